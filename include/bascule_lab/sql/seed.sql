-- Synthetic hospital data, generated set-based inside PostgreSQL.
--
-- Scale and seed come from custom settings, so the file also runs under psql:
--   SET bascule.patients = 100000; SET bascule.seed = 42;
-- Every pseudo-random value is hashint8extended(row number, seed) and never
-- random(): a row's content depends only on (seed, patients, its own number), not
-- on execution order, so two seedings produce byte-identical tables.
--
-- Expects the empty schema from schema.sql. bascule_lab.seed runs it one
-- "-- @step" at a time (to report progress per table) around its own
-- drop/rebuild of secondary indexes and foreign keys; loading into bare heaps
-- and building indexes once afterwards is several times faster. The steps
-- between setup and sequences are independent of one another (ids are
-- explicit, foreign keys come after), so it runs them on two sessions at once,
-- each session running setup for its own temporary helpers; a step marked
-- "-- @slices n" is split into n statements over its row numbers.
--
-- Proportions (kept in step with bascule_lab.seed.SeedSpec): 38 hospitals,
-- staff 0.0085/patient (min 200), encounters 2, prescriptions 1.5,
-- observations 3, clinical notes 0.3, audit rows 3 per patient. Five canary
-- patients are part of the patient count.

-- @step setup
CREATE TEMPORARY TABLE seed_params ON COMMIT PRESERVE ROWS AS
SELECT n.patients,
       n.seed,
       n.ref,
       n.patients - 5                                             AS nreg,
       greatest(200, round(n.patients * 0.0085))::bigint         AS nstaff,
       (n.patients * 2)::bigint                                   AS nenc,
       round(n.patients * 1.5)::bigint                            AS nrx,
       (n.patients * 3)::bigint                                   AS nobs,
       round(n.patients * 0.3)::bigint                            AS nnotes,
       (n.patients * 3)::bigint                                   AS naudit
FROM (SELECT current_setting('bascule.patients')::bigint AS patients,
             current_setting('bascule.seed')::bigint AS seed,
             -- Set by bascule_lab.seed (REFERENCE_DATE): the one date the data is laid out from.
             current_setting('bascule.reference_date')::timestamptz AS ref) AS n;
-- One row; without statistics the planner guesses hundreds and costs every
-- query as if it were hundreds of times larger.
ANALYZE seed_params;

-- h(): a non-negative pseudo-random bigint for (row i, purpose k); u(): the same
-- as a double in [0, 1). Plain SQL functions, so the planner inlines them.
CREATE FUNCTION pg_temp.h(i bigint, k integer, s bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashint8extended(i * 101 + k, s) & 9223372036854775807 $$;
CREATE FUNCTION pg_temp.u(i bigint, k integer, s bigint) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ((hashint8extended(i * 101 + k, s) >> 11) & 9007199254740991)::double precision
                 / 9007199254740992.0 $$;

-- A step marked "-- @slices n" may run as n statements at once, each on the
-- numbers of its slice: bascule.slice = 'k/n' (unset: the whole range).
CREATE FUNCTION pg_temp.slice_first(total bigint) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT 1 + total * (split_part(s, '/', 1)::bigint - 1) / split_part(s, '/', 2)::bigint
          FROM (SELECT coalesce(nullif(current_setting('bascule.slice', true), ''), '1/1') AS s) AS x $$;
CREATE FUNCTION pg_temp.slice_last(total bigint) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT total * split_part(s, '/', 1)::bigint / split_part(s, '/', 2)::bigint
          FROM (SELECT coalesce(nullif(current_setting('bascule.slice', true), ''), '1/1') AS s) AS x $$;

-- Encounter attributes other tables derive from, recomputed instead of joined
-- so that every table is one generate_series scan.
CREATE FUNCTION pg_temp.enc_patient(e bigint, s bigint, nreg bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 1 + pg_temp.h(e, 1, s) % nreg $$;
CREATE FUNCTION pg_temp.enc_type(e bigint, s bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN pg_temp.u(e, 2, s) < 0.30 THEN 'emergency'
                      WHEN pg_temp.u(e, 2, s) < 0.55 THEN 'inpatient'
                      ELSE 'outpatient' END $$;
-- Skewed towards the recent past: six years of history, denser lately.
CREATE FUNCTION pg_temp.enc_admitted(e bigint, s bigint, ref timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ref - make_interval(secs => round(pg_temp.u(e, 3, s) ^ 2 * 189216000)) $$;
CREATE FUNCTION pg_temp.enc_length(e bigint, s bigint) RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT make_interval(secs => round(CASE pg_temp.enc_type(e, s)
                 WHEN 'emergency' THEN 3600 + pg_temp.u(e, 4, s) * 43200
                 WHEN 'inpatient' THEN 86400 + pg_temp.u(e, 4, s) ^ 2 * 1814400
                 ELSE 1200 + pg_temp.u(e, 4, s) * 4200 END)) $$;
-- Staff are assigned to hospitals round-robin (staff_id - 1) % 38, so "a member
-- of staff of hospital x" is arithmetic, not a lookup.
CREATE FUNCTION pg_temp.staff_at(hosp bigint, i bigint, k integer, s bigint, nstaff bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hosp + 38 * (pg_temp.h(i, k, s) % ((nstaff - hosp) / 38 + 1)) $$;
CREATE FUNCTION pg_temp.patient_hospital(p bigint, s bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 1 + pg_temp.h(p, 5, s) % 38 $$;
CREATE FUNCTION pg_temp.enc_hospital(e bigint, s bigint, nreg bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN pg_temp.u(e, 6, s) < 0.9
                      THEN pg_temp.patient_hospital(pg_temp.enc_patient(e, s, nreg), s)
                      ELSE 1 + pg_temp.h(e, 6, s) % 38 END $$;

CREATE TEMPORARY TABLE seed_family (i integer PRIMARY KEY, name text NOT NULL);
INSERT INTO seed_family
SELECT ord - 1, name FROM unnest(ARRAY[
    'Smith','Jones','Williams','Taylor','Brown','Davies','Evans','Wilson','Thomas','Johnson',
    'Roberts','Robinson','Thompson','Wright','Walker','White','Edwards','Hughes','Green','Hall',
    'Lewis','Harris','Clarke','Patel','Jackson','Wood','Turner','Martin','Cooper','Hill',
    'Ward','Morris','Moore','Clark','Lee','King','Baker','Harrison','Morgan','Allen',
    'James','Scott','Phillips','Watson','Davis','Parker','Price','Bennett','Young','Griffiths',
    'Mitchell','Kelly','Cook','Carter','Richardson','Bailey','Collins','Bell','Shaw','Murphy',
    'Miller','Cox','Richards','Khan','Marshall','Anderson','Simpson','Ellis','Adams','Singh',
    'Begum','Wilkinson','Foster','Chapman','Powell','Webb','Rogers','Gray','Mason','Ali',
    'Hunt','Hussain','Campbell','Matthews','Owen','Palmer','Holmes','Mills','Barnes','Knight',
    'Lloyd','Butler','Russell','Barker','Fisher','Stevens','Jenkins','Murray','Dixon','Harvey',
    'Okafor','Nowak','Kowalski','Mensah','Chen','Nguyen','Das','Rahman','OConnor','Fraser'])
    WITH ORDINALITY AS t(name, ord);

CREATE TEMPORARY TABLE seed_given (i integer PRIMARY KEY, name text NOT NULL, sex char(1) NOT NULL);
INSERT INTO seed_given
SELECT ord - 1, name, CASE WHEN ord <= 40 THEN 'F' ELSE 'M' END FROM unnest(ARRAY[
    'Olivia','Amelia','Isla','Ava','Mia','Ivy','Lily','Isabella','Rosie','Sophia',
    'Grace','Freya','Willow','Emily','Ella','Poppy','Evie','Charlotte','Elsie','Florence',
    'Margaret','Susan','Patricia','Elizabeth','Sarah','Helen','Catherine','Joanne','Aisha','Fatima',
    'Priya','Zara','Hannah','Chloe','Megan','Rachel','Anna','Maria','Julia','Alice',
    'Oliver','George','Noah','Arthur','Muhammad','Leo','Harry','Oscar','Archie','Henry',
    'Theodore','Freddie','Jack','Charlie','Thomas','James','William','David','John','Michael',
    'Peter','Robert','Richard','Paul','Andrew','Mark','Stephen','Daniel','Joseph','Samuel',
    'Adam','Ryan','Ben','Luke','Omar','Ali','Ravi','Kwame','Tomasz','Liam'])
    WITH ORDINALITY AS t(name, ord);

CREATE TEMPORARY TABLE seed_street (i integer PRIMARY KEY, name text NOT NULL);
INSERT INTO seed_street
SELECT ord - 1, name FROM unnest(ARRAY[
    'High Street','Station Road','Church Lane','Main Street','Park Road','Victoria Road','Green Lane',
    'Manor Road','Church Street','Park Avenue','The Avenue','Queens Road','New Road','Grange Road',
    'Kings Road','Mill Lane','School Lane','North Street','London Road','Orchard Close','The Crescent',
    'Albert Road','Springfield Road','Windsor Road','York Road','Highfield Road','Chestnut Grove',
    'Meadow Way','Beech Avenue','Cedar Close','Willow Drive','Oak Tree Lane','St Johns Road','Mount Pleasant',
    'Westfield Road','Elm Grove','Hillside Avenue','Broadway','Mill Road','Riverside Walk'])
    WITH ORDINALITY AS t(name, ord);

CREATE TEMPORARY TABLE seed_drug (
    i integer PRIMARY KEY, code text, name text, dose numeric, route text, frequency text);
INSERT INTO seed_drug VALUES
    (0,  'PARA1G',   'Paracetamol',         1000,  'oral',    'QDS'),
    (1,  'IBU400',   'Ibuprofen',           400,   'oral',    'TDS'),
    (2,  'AMOX500',  'Amoxicillin',         500,   'oral',    'TDS'),
    (3,  'MET500',   'Metformin',           500,   'oral',    'BD'),
    (4,  'ATOR20',   'Atorvastatin',        20,    'oral',    'ON'),
    (5,  'RAMI5',    'Ramipril',            5,     'oral',    'OD'),
    (6,  'AMLO5',    'Amlodipine',          5,     'oral',    'OD'),
    (7,  'OMEP20',   'Omeprazole',          20,    'oral',    'OD'),
    (8,  'LEVO50',   'Levothyroxine',       0.05,  'oral',    'OD'),
    (9,  'MORPH10',  'Morphine sulfate',    10,    'iv',      'PRN'),
    (10, 'ENOX40',   'Enoxaparin',          40,    'sc',      'OD'),
    (11, 'CEFT1G',   'Ceftriaxone',         1000,  'iv',      'OD'),
    (12, 'FURO40',   'Furosemide',          40,    'oral',    'OD'),
    (13, 'SALB100',  'Salbutamol',          0.1,   'inhaled', 'PRN'),
    (14, 'PRED30',   'Prednisolone',        30,    'oral',    'OD'),
    (15, 'GENT320',  'Gentamicin',          320,   'iv',      'OD'),
    (16, 'ONDA4',    'Ondansetron',         4,     'iv',      'PRN'),
    (17, 'CODE30',   'Codeine phosphate',   30,    'oral',    'QDS'),
    (18, 'COAMOX',   'Co-amoxiclav',        625,   'oral',    'TDS'),
    (19, 'CLOP75',   'Clopidogrel',         75,    'oral',    'OD'),
    (20, 'WARF3',    'Warfarin',            3,     'oral',    'OD'),
    (21, 'SERT50',   'Sertraline',          50,    'oral',    'OD'),
    (22, 'METRO500', 'Metronidazole',       500,   'iv',      'TDS'),
    (23, 'HYDRO100', 'Hydrocortisone',      100,   'im',      'STAT'),
    (24, 'DICLO1',   'Diclofenac gel',      10,    'topical', 'TDS');

CREATE TEMPORARY TABLE seed_vital (
    i integer PRIMARY KEY, code text, unit text, mean numeric, sd numeric, lo numeric);
INSERT INTO seed_vital VALUES
    (0,  '8867-4',  '/min',   78,   14,   30),    -- heart rate
    (1,  '8480-6',  'mm[Hg]', 128,  18,   60),    -- systolic BP
    (2,  '8462-4',  'mm[Hg]', 79,   11,   30),    -- diastolic BP
    (3,  '8310-5',  'Cel',    36.9, 0.6,  33),    -- body temperature
    (4,  '9279-1',  '/min',   16,   3,    6),     -- respiratory rate
    (5,  '59408-5', '%',      96.5, 2,    70),    -- SpO2
    (6,  '29463-7', 'kg',     76,   17,   2),     -- body weight
    (7,  '2345-7',  'mg/dL',  104,  28,   30),    -- glucose
    (8,  '718-7',   'g/dL',   13.6, 1.7,  4),     -- haemoglobin
    (9,  '2160-0',  'mg/dL',  0.95, 0.3,  0.2),   -- creatinine
    (10, '2823-3',  'mmol/L', 4.2,  0.45, 2),     -- potassium
    (11, '1988-5',  'mg/L',   12,   18,   0.5);   -- C-reactive protein

-- Note paragraphs: word salad over a clinical vocabulary with numbers mixed
-- in. Compressible like real prose but not trivially, so long notes still
-- end up out of line in TOAST after pglz.
CREATE TEMPORARY TABLE seed_paragraph (i integer PRIMARY KEY, body text NOT NULL);
INSERT INTO seed_paragraph
SELECT pi - 1,
       (SELECT string_agg(CASE WHEN pg_temp.u(pi * 1000 + w, 21, p.seed) < 0.08
                               THEN (pg_temp.h(pi * 1000 + w, 22, p.seed) % 240)::text
                               ELSE v.words[1 + pg_temp.h(pi * 1000 + w, 23, p.seed) % array_length(v.words, 1)]
                          END || CASE WHEN w % 13 = 0 THEN '.' ELSE '' END, ' ' ORDER BY w)
        FROM generate_series(1, 50 + pg_temp.h(pi, 24, p.seed) % 170) AS w)
FROM seed_params AS p,
     generate_series(1, 512) AS pi,
     (SELECT ARRAY[
        'patient','reviewed','on','ward','round','alert','and','orientated','denies','chest','pain',
        'shortness','of','breath','mild','tenderness','abdomen','soft','non-tender','bowel','sounds',
        'present','plan','continue','current','management','observations','stable','afebrile','overnight',
        'pain','controlled','with','regular','analgesia','mobilising','independently','physiotherapy',
        'input','requested','bloods','repeated','today','potassium','within','normal','range','creatinine',
        'improving','fluid','balance','positive','encourage','oral','intake','review','by','consultant',
        'discussed','family','agreed','discharge','planning','social','work','referral','wound','clean',
        'dry','dressing','changed','no','signs','infection','antibiotics','day','course','complete',
        'sats','air','heart','rate','blood','pressure','temperature','respiratory','examination',
        'unremarkable','ECG','sinus','rhythm','chest','x-ray','clear','lung','fields','bilateral',
        'crackles','bases','oedema','ankles','diuretic','dose','increased','weight','daily','monitor',
        'glucose','insulin','sliding','scale','diet','tolerated','nausea','vomiting','resolved','safety',
        'netting','advice','given','follow-up','clinic','weeks','GP','letter','sent','medication',
        'reconciliation','completed','pharmacy','allergies','nil','known','falls','risk','assessment',
        'pressure','areas','intact','catheter','removed','passing','urine','the','a','is','was','for',
        'to','in','at','of','with','after','before','since','likely','query','impression','differential'
      ] AS words) AS v;
ANALYZE seed_paragraph;

-- @step hospitals
INSERT INTO clinic.hospitals (hospital_id, code, name, city, region, bed_count, opened_on, created_at)
SELECT t.ord,
       'H' || lpad(t.ord::text, 3, '0'),
       t.city || ' ' || (ARRAY['General Hospital','Royal Infirmary','University Hospital',
                               'District General Hospital','Community Hospital'])[1 + pg_temp.h(t.ord, 1, p.seed) % 5],
       t.city,
       t.region,
       120 + pg_temp.h(t.ord, 2, p.seed) % 1200,
       date '1948-07-05' + (pg_temp.h(t.ord, 3, p.seed) % 25000)::integer,
       p.ref - interval '12 years'
FROM seed_params AS p,
     unnest(ARRAY['Leeds','Manchester','Birmingham','Newcastle','Cardiff','Edinburgh','Glasgow','Bristol',
                  'Nottingham','Liverpool','Sheffield','Oxford','Cambridge','Reading','Southampton','Plymouth',
                  'Exeter','York','Hull','Derby','Leicester','Coventry','Norwich','Ipswich','Brighton',
                  'Canterbury','Swansea','Aberdeen','Dundee','Inverness','Belfast','Preston','Lancaster',
                  'Carlisle','Stoke','Wolverhampton','Gloucester','Truro'],
            ARRAY['Yorkshire','North West','Midlands','North East','Wales','Scotland','Scotland','South West',
                  'Midlands','North West','Yorkshire','South East','East','South East','South East','South West',
                  'South West','Yorkshire','Yorkshire','Midlands','Midlands','Midlands','East','East','South East',
                  'South East','Wales','Scotland','Scotland','Scotland','Northern Ireland','North West','North West',
                  'North West','Midlands','Midlands','South West','South West'])
         WITH ORDINALITY AS t(city, region, ord);

-- @step staff
INSERT INTO clinic.staff (staff_id, username, full_name, role, hospital_id, email, active, created_at)
SELECT st,
       lower(left(g.name, 1) || f.name) || lpad(st::text, 5, '0'),
       CASE WHEN r.role = 'doctor' THEN 'Dr ' ELSE '' END || g.name || ' ' || f.name,
       r.role,
       1 + (st - 1) % 38,
       lower(left(g.name, 1) || f.name) || lpad(st::text, 5, '0') || '@nhs.example',
       pg_temp.u(st, 4, p.seed) >= 0.06,
       p.ref - make_interval(secs => round(pg_temp.u(st, 5, p.seed) * 378432000))
FROM seed_params AS p
CROSS JOIN LATERAL generate_series(1, p.nstaff) AS st
CROSS JOIN LATERAL (SELECT CASE WHEN x < 0.25 THEN 'doctor' WHEN x < 0.70 THEN 'nurse'
                                WHEN x < 0.76 THEN 'pharmacist' WHEN x < 0.90 THEN 'admin_clerk'
                                WHEN x < 0.94 THEN 'radiographer' WHEN x < 0.98 THEN 'physiotherapist'
                                ELSE 'it_support' END AS role
                    FROM (SELECT pg_temp.u(st, 1, p.seed) AS x) AS xx) AS r
JOIN seed_given AS g ON g.i = pg_temp.h(st, 2, p.seed) % 80
JOIN seed_family AS f ON f.i = pg_temp.h(st, 3, p.seed) % 110;

-- @step patients
-- NINO-like numbers: an affine bijection of the patient number modulo 20M (20
-- valid prefixes x 10^6), so they are unique without a lookup and do not
-- follow the patient order.
INSERT INTO clinic.patients (patient_id, mrn, nin, family_name, given_name, birth_date, sex,
                             address_line, postcode, phone, home_hospital_id, created_at, updated_at)
SELECT x.pid,
       'MRN' || lpad(x.pid::text, 10, '0'),
       (ARRAY['AB','CE','EH','GY','HT','JL','KM','LR','MA','NP','OE','PR','RW','SX','TY','WE','XK','YN','HP','JC'])
           [1 + x.nino / 1000000] || lpad((x.nino % 1000000)::text, 6, '0')
           || (ARRAY['A','B','C','D'])[1 + pg_temp.h(x.pid, 1, p.seed) % 4],
       f.name,
       g.name,
       (p.ref AT TIME ZONE 'UTC')::date - (pg_temp.h(x.pid, 4, p.seed) % 36500)::integer,
       x.sex,
       (1 + pg_temp.h(x.pid, 6, p.seed) % 240)::text || ' ' || s.name,
       (ARRAY['LS','M','B','NE','CF','EH','G','BS','NG','L','S','OX','CB','RG','SO','PL','EX','YO','HU','DE'])
           [1 + pg_temp.h(x.pid, 7, p.seed) % 20] || (1 + pg_temp.h(x.pid, 8, p.seed) % 29)::text || ' '
           || (pg_temp.h(x.pid, 9, p.seed) % 10)::text
           || substr('ABDEFGHJLNPQRSTUWXYZ', 1 + (pg_temp.h(x.pid, 10, p.seed) % 20)::integer, 1)
           || substr('ABDEFGHJLNPQRSTUWXYZ', 1 + (pg_temp.h(x.pid, 11, p.seed) % 20)::integer, 1),
       CASE WHEN pg_temp.u(x.pid, 12, p.seed) < 0.04 THEN NULL
            ELSE '+447' || lpad((pg_temp.h(x.pid, 13, p.seed) % 1000000000)::text, 9, '0') END,
       pg_temp.patient_hospital(x.pid, p.seed),
       x.created_at,
       x.created_at + make_interval(secs => round(pg_temp.u(x.pid, 15, p.seed) ^ 3
                                                  * extract(epoch FROM p.ref - x.created_at)))
FROM seed_params AS p
CROSS JOIN LATERAL (
    SELECT pid,
           (pid * 7919 + pg_temp.h(0, 0, p.seed) % 20000000) % 20000000 AS nino,
           CASE WHEN pg_temp.u(pid, 2, p.seed) < 0.49 THEN 'F' WHEN pg_temp.u(pid, 2, p.seed) < 0.98 THEN 'M'
                WHEN pg_temp.u(pid, 2, p.seed) < 0.99 THEN 'X' ELSE 'U' END AS sex,
           p.ref - make_interval(secs => round(pg_temp.u(pid, 14, p.seed) * 473040000)) AS created_at
    FROM generate_series(1, p.nreg) AS pid OFFSET 0) AS x
JOIN seed_family AS f ON f.i = pg_temp.h(x.pid, 3, p.seed) % 110
JOIN seed_given AS g ON g.i = CASE x.sex WHEN 'F' THEN pg_temp.h(x.pid, 5, p.seed) % 40
                                        WHEN 'M' THEN 40 + pg_temp.h(x.pid, 5, p.seed) % 40
                                        ELSE pg_temp.h(x.pid, 5, p.seed) % 80 END
JOIN seed_street AS s ON s.i = pg_temp.h(x.pid, 6, p.seed) % 40;

-- Canary patients (bascule_lab.canary.CANARY_PATIENTS): values that never
-- occur by chance, so any copy of them in a log, report or notification is a
-- leak. They take the last five patient numbers.
INSERT INTO clinic.patients (patient_id, mrn, nin, family_name, given_name, birth_date, sex,
                             address_line, postcode, phone, home_hospital_id, created_at, updated_at)
SELECT p.nreg + c.n, c.mrn, c.nin, c.family_name, c.given_name, c.birth_date, c.sex,
       c.address_line, c.postcode, c.phone, 1 + (c.n * 7) % 38,
       p.ref - interval '400 days', p.ref - interval '30 days'
FROM seed_params AS p,
     (VALUES
        (1, 'MRNCANARY0001', 'ZZ999901Q', 'Zqxcanaryfenwick',    'Canaryquilla',  date '1961-03-14', 'F',
            '17 Canarywharf Xylo Lane',    'ZZ99 1QX', '+44 7700 900001'),
        (2, 'MRNCANARY0002', 'ZZ999902Q', 'Zqxcanarybrightmoor', 'Canaryoswaldo', date '1978-11-02', 'M',
            '42 Quizzlecanary Mews',       'ZZ99 2QX', '+44 7700 900002'),
        (3, 'MRNCANARY0003', 'ZZ999903Q', 'Zqxcanaryholloway',   'Canarybelphine', date '1990-06-30', 'X',
            '3 Canarybrook Zephyr Court',  'ZZ99 3QX', '+44 7700 900003'),
        (4, 'MRNCANARY0004', 'ZZ999904Q', 'Zqxcanarymarchetti',  'Canarytobiah',  date '2004-01-21', 'M',
            '88 Xylocanary Jubilee Row',   'ZZ99 4QX', '+44 7700 900004'),
        (5, 'MRNCANARY0005', 'ZZ999905Q', 'Zqxcanaryvantongeren', 'Canaryeloweth', date '1949-09-09', 'U',
            '5 Canaryquay Wyvern Terrace', 'ZZ99 5QX', '+44 7700 900005'))
     AS c(n, mrn, nin, family_name, given_name, birth_date, sex, address_line, postcode, phone);

-- @step encounters
-- OFFSET 0 keeps the lateral subquery from being flattened, so each derived
-- value is computed once per row and the functions using it twice still inline.
INSERT INTO clinic.encounters (encounter_id, patient_id, hospital_id, attending_staff_id, encounter_type,
                               ward, admitted_at, discharged_at)
SELECT x.e,
       pg_temp.enc_patient(x.e, p.seed, p.nreg),
       x.hosp,
       pg_temp.staff_at(x.hosp, x.e, 7, p.seed, p.nstaff),
       x.etype,
       CASE x.etype WHEN 'emergency' THEN (ARRAY['ED Majors','ED Minors','ED Resus','CDU'])
                                              [1 + pg_temp.h(x.e, 8, p.seed) % 4]
                    WHEN 'outpatient' THEN (ARRAY['OPD Cardiology','OPD Diabetes','OPD Fracture','OPD Respiratory',
                                                  'OPD Rheumatology','OPD General Surgery'])
                                              [1 + pg_temp.h(x.e, 8, p.seed) % 6]
                    ELSE (ARRAY['Ward 1','Ward 2','Ward 3','Ward 4','Ward 5','Ward 6','AMU','ICU','HDU',
                                'Coronary Care','Elderly Care','Orthopaedics'])[1 + pg_temp.h(x.e, 8, p.seed) % 12]
       END,
       x.admitted_at,
       -- Stays that would end after the reference date are still open.
       CASE WHEN x.admitted_at + pg_temp.enc_length(x.e, p.seed) <= p.ref
            THEN x.admitted_at + pg_temp.enc_length(x.e, p.seed) END
FROM seed_params AS p
CROSS JOIN LATERAL (
    SELECT e,
           pg_temp.enc_hospital(e, p.seed, p.nreg) AS hosp,
           pg_temp.enc_type(e, p.seed) AS etype,
           pg_temp.enc_admitted(e, p.seed, p.ref) AS admitted_at
    FROM generate_series(1, p.nenc - 10) AS e OFFSET 0) AS x;

-- Two encounters per canary patient, the last ten encounter numbers.
INSERT INTO clinic.encounters (encounter_id, patient_id, hospital_id, attending_staff_id, encounter_type,
                               ward, admitted_at, discharged_at)
SELECT p.nenc - 10 + (c.n - 1) * 2 + k.k,
       p.nreg + c.n,
       1 + (c.n * 7) % 38,
       1 + (c.n * 7) % 38,
       CASE k.k WHEN 1 THEN 'outpatient' ELSE 'inpatient' END,
       CASE k.k WHEN 1 THEN 'OPD Cardiology' ELSE 'Ward 3' END,
       p.ref - make_interval(days => 200 - 60 * k.k + c.n),
       p.ref - make_interval(days => 200 - 60 * k.k + c.n) + CASE k.k WHEN 1 THEN interval '45 minutes'
                                                                     ELSE interval '4 days' END
FROM seed_params AS p, generate_series(1, 5) AS c(n), generate_series(1, 2) AS k(k);

-- @step prescriptions
INSERT INTO clinic.prescriptions (prescription_id, encounter_id, patient_id, prescriber_id, drug_code, drug_name,
                                  dose_mg, route, frequency, prescribed_at)
SELECT x.r,
       x.e,
       pg_temp.enc_patient(x.e, p.seed, p.nreg),
       pg_temp.staff_at(x.hosp, x.r, 31, p.seed, p.nstaff),
       d.code,
       d.name,
       d.dose * (ARRAY[0.5, 1, 1, 1, 2])[1 + pg_temp.h(x.r, 32, p.seed) % 5],
       d.route,
       d.frequency,
       pg_temp.enc_admitted(x.e, p.seed, p.ref)
           + pg_temp.u(x.r, 33, p.seed) * least(pg_temp.enc_length(x.e, p.seed), interval '2 days')
FROM seed_params AS p
CROSS JOIN LATERAL (SELECT r, e, pg_temp.enc_hospital(e, p.seed, p.nreg) AS hosp
                    FROM (SELECT r, 1 + pg_temp.h(r, 30, p.seed) % (p.nenc - 10) AS e
                          FROM generate_series(1, p.nrx - 5) AS r OFFSET 0) AS y OFFSET 0) AS x
JOIN seed_drug AS d ON d.i = pg_temp.h(x.r, 34, p.seed) % 25;

INSERT INTO clinic.prescriptions (prescription_id, encounter_id, patient_id, prescriber_id, drug_code, drug_name,
                                  dose_mg, route, frequency, prescribed_at)
SELECT p.nrx - 5 + c.n, p.nenc - 10 + c.n * 2, p.nreg + c.n, 1 + (c.n * 7) % 38,
       'PARA1G', 'Paracetamol', 1000, 'oral', 'QDS', p.ref - make_interval(days => 80 - c.n, hours => 2)
FROM seed_params AS p, generate_series(1, 5) AS c(n);

-- @step observations
INSERT INTO clinic.observations (observation_id, encounter_id, code, value_num, unit, observed_at)
SELECT x.o,
       x.e,
       v.code,
       -- Irwin-Hall approximation of a normal distribution, floored at a
       -- physiological minimum.
       round(greatest(v.lo, v.mean + v.sd * ((pg_temp.u(x.o, 41, p.seed) + pg_temp.u(x.o, 42, p.seed)
                                             + pg_temp.u(x.o, 43, p.seed) - 1.5) * 2)::numeric), 2),
       v.unit,
       pg_temp.enc_admitted(x.e, p.seed, p.ref)
           + pg_temp.u(x.o, 44, p.seed) * least(pg_temp.enc_length(x.e, p.seed), interval '3 days')
FROM seed_params AS p
CROSS JOIN LATERAL (SELECT o, 1 + pg_temp.h(o, 40, p.seed) % (p.nenc - 10) AS e
                    FROM generate_series(1, p.nobs - 10) AS o OFFSET 0) AS x
JOIN seed_vital AS v ON v.i = pg_temp.h(x.o, 45, p.seed) % 12;

INSERT INTO clinic.observations (observation_id, encounter_id, code, value_num, unit, observed_at)
SELECT p.nobs - 10 + (c.n - 1) * 2 + k.k, p.nenc - 10 + (c.n - 1) * 2 + k.k,
       CASE k.k WHEN 1 THEN '8867-4' ELSE '8310-5' END,
       CASE k.k WHEN 1 THEN 70 + c.n ELSE 36.8 END,
       CASE k.k WHEN 1 THEN '/min' ELSE 'Cel' END,
       p.ref - make_interval(days => 200 - 60 * k.k + c.n) + interval '20 minutes'
FROM seed_params AS p, generate_series(1, 5) AS c(n), generate_series(1, 2) AS k(k);

-- @step clinical_notes
-- Most notes are one to three paragraphs; about one in twelve runs past 8 kB.
INSERT INTO clinic.clinical_notes (note_id, encounter_id, author_id, note_type, written_at, note_text)
SELECT x.c,
       x.e,
       pg_temp.staff_at(x.hosp, x.c, 51, p.seed, p.nstaff),
       x.note_type,
       pg_temp.enc_admitted(x.e, p.seed, p.ref)
           + pg_temp.u(x.c, 52, p.seed) * least(pg_temp.enc_length(x.e, p.seed), interval '3 days'),
       initcap(replace(x.note_type, '_', ' ')) || E' note.\n\n'
           || (SELECT string_agg(sp.body, E'\n\n' ORDER BY j)
               FROM generate_series(1, 1 + floor(pg_temp.u(x.c, 53, p.seed) ^ 5 * 14)::integer) AS j
               JOIN seed_paragraph AS sp ON sp.i = pg_temp.h(x.c * 16 + j, 54, p.seed) % 512)
FROM seed_params AS p
CROSS JOIN LATERAL (SELECT c, e, note_type, pg_temp.enc_hospital(e, p.seed, p.nreg) AS hosp
                    FROM (SELECT c, 1 + pg_temp.h(c, 50, p.seed) % (p.nenc - 10) AS e,
                                 (ARRAY['admission', 'progress', 'ward_round', 'discharge_summary', 'nursing',
                                        'consultation'])[1 + pg_temp.h(c, 55, p.seed) % 6] AS note_type
                          FROM generate_series(1, p.nnotes - 5) AS c OFFSET 0) AS y OFFSET 0) AS x;

INSERT INTO clinic.clinical_notes (note_id, encounter_id, author_id, note_type, written_at, note_text)
SELECT p.nnotes - 5 + c.n, p.nenc - 10 + c.n * 2, 1 + (c.n * 7) % 38, 'discharge_summary',
       p.ref - make_interval(days => 77 - c.n),
       E'Discharge summary note.\n\nAdmitted for observation after a fall at home. Observations stable '
       'throughout, mobilising independently, pain controlled with regular paracetamol. Discharged home '
       'with GP follow-up in two weeks.'
FROM seed_params AS p, generate_series(1, 5) AS c(n);

-- @step audit_log
-- @slices 2
-- Audit ids follow time, as an append-only log's would: row a falls in slot a
-- of the 36 months before the reference date.
INSERT INTO clinic.audit_log (audit_id, logged_at, staff_id, patient_id, action, object_type, object_id,
                              client_addr, workstation, session_id, details)
SELECT x.a,
       x.logged_at,
       x.st,
       1 + pg_temp.h(x.a, 61, p.seed) % p.nreg,
       (ARRAY['view','view','view','view','view','view','update','update','create','print','export'])
           [1 + pg_temp.h(x.a, 62, p.seed) % 11],
       x.object_type,
       CASE WHEN x.object_type <> 'patient' THEN 1 + pg_temp.h(x.a, 64, p.seed) % p.nobs END,
       ('10.' || (1 + (x.st - 1) % 38) || '.' || (pg_temp.h(x.st, 65, p.seed) % 256) || '.'
            || (1 + pg_temp.h(x.a, 66, p.seed) % 254))::inet,
       'WS-' || upper(left(h.city, 4)) || '-' || lpad((pg_temp.h(x.a, 67, p.seed) % 4000)::text, 4, '0'),
       -- A session spans a few dozen consecutive actions of one user.
       md5(p.seed::text || '/' || (x.a / 40)::text || '/' || x.st::text)::uuid,
       jsonb_build_object(
           'route', '/api/v1/' || x.object_type || 's/' || (1 + pg_temp.h(x.a, 69, p.seed) % p.nreg)::text,
           'reason', (ARRAY['direct care', 'direct care', 'direct care', 'clinical audit', 'medication review',
                            'discharge planning', 'safeguarding'])[1 + pg_temp.h(x.a, 70, p.seed) % 7],
           'http_status', CASE WHEN pg_temp.u(x.a, 71, p.seed) < 0.01 THEN 403 ELSE 200 END,
           'duration_ms', 5 + pg_temp.h(x.a, 72, p.seed) % 900,
           'client', 'clinic-web/1.' || (pg_temp.h(x.st, 73, p.seed) % 9)::text,
           'user_agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/'
                         || (118 + pg_temp.h(x.st, 74, p.seed) % 12)::text || '.0.0.0 Safari/537.36 Edg/'
                         || (118 + pg_temp.h(x.st, 74, p.seed) % 12)::text || '.0.0.0')
FROM seed_params AS p
CROSS JOIN LATERAL (
    SELECT a,
           1 + pg_temp.h(a, 60, p.seed) % p.nstaff AS st,
           (ARRAY['patient','patient','encounter','prescription','observation','clinical_note'])
               [1 + pg_temp.h(a, 63, p.seed) % 6] AS object_type,
           (p.ref - interval '36 months')
               + ((a - 1 + pg_temp.u(a, 68, p.seed)) / p.naudit) * (p.ref - (p.ref - interval '36 months'))
               AS logged_at
    FROM generate_series(pg_temp.slice_first(p.naudit), pg_temp.slice_last(p.naudit)) AS a OFFSET 0) AS x
JOIN clinic.hospitals AS h ON h.hospital_id = 1 + (x.st - 1) % 38;

-- @step sequences
SELECT setval(pg_get_serial_sequence('clinic.hospitals', 'hospital_id'), (SELECT max(hospital_id) FROM clinic.hospitals));
SELECT setval(pg_get_serial_sequence('clinic.staff', 'staff_id'), (SELECT max(staff_id) FROM clinic.staff));
SELECT setval(pg_get_serial_sequence('clinic.patients', 'patient_id'), (SELECT max(patient_id) FROM clinic.patients));
SELECT setval(pg_get_serial_sequence('clinic.encounters', 'encounter_id'), (SELECT max(encounter_id) FROM clinic.encounters));
SELECT setval(pg_get_serial_sequence('clinic.prescriptions', 'prescription_id'), (SELECT max(prescription_id) FROM clinic.prescriptions));
SELECT setval(pg_get_serial_sequence('clinic.observations', 'observation_id'), (SELECT max(observation_id) FROM clinic.observations));
SELECT setval(pg_get_serial_sequence('clinic.clinical_notes', 'note_id'), (SELECT max(note_id) FROM clinic.clinical_notes));
SELECT setval(pg_get_serial_sequence('clinic.audit_log', 'audit_id'), (SELECT max(audit_id) FROM clinic.audit_log));

-- @step cleanup
DROP TABLE seed_params, seed_family, seed_given, seed_street, seed_drug, seed_vital, seed_paragraph;
DROP FUNCTION pg_temp.slice_first, pg_temp.slice_last, pg_temp.enc_hospital, pg_temp.patient_hospital, pg_temp.staff_at, pg_temp.enc_length,
              pg_temp.enc_admitted, pg_temp.enc_type, pg_temp.enc_patient, pg_temp.u, pg_temp.h;
