# bascule's Airflow image: the official Apache Airflow 3.3.2 image plus bascule's pinned stack.
#
# Never built here (no Docker engine on the development machines); docker-compose.yaml builds it.
#
# Why install the lock with --no-deps on top of the image instead of the image's constraints:
# requirements.lock is the exact set the tests ran against (docs/adr/0001); it carries the one
# deliberate override of overrides.txt (structlog>=26.1.0 against the GX provider's stale upper
# bound), which a resolver would refuse, so the lock is installed as resolved, without resolving
# again. `install`, not `sync`: the image's CeleryExecutor pieces (celery provider, celery, redis)
# are not in the lock (the lab runs LocalExecutor) and must stay.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/airflow

COPY --chown=airflow:0 requirements.lock overrides.txt /opt/airflow/requirements/
RUN pip install --no-cache-dir --no-deps -r /opt/airflow/requirements/requirements.lock

# bascule itself, editable from /opt/airflow/include: the compose file mounts the checkout's
# include/ over this copy, so the running code is always the mounted one.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 expectations /opt/airflow/expectations
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

ENV PYTHONPATH=/opt/airflow/include \
    BASCULE_PLAN=/opt/airflow/include/plans/lab.yaml

# Fail the build, not the cutover night: the executor's modules import, bascule imports,
# the pinned versions are the ones installed, and the shipped plans validate.
RUN python -c "import airflow.providers.celery.executors.celery_executor, redis, bascule.plan, bascule_lab.remote" \
 && python -c "import importlib.metadata as m; assert m.version('apache-airflow') == '3.3.2', m.version('apache-airflow')" \
 && bascule plan check /opt/airflow/include/plans/lab.yaml \
 && bascule plan check /opt/airflow/include/plans/production-oracle.example.yaml
