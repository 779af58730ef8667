"""Go/no-go gates: the people who answer them, and the REST client that answers for tools."""
