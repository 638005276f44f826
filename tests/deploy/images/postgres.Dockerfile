# PostgreSQL from Debian's archive for the compose test (tests/deploy/test_compose.py), in place of the
# registry's postgres:15: the same POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and data folder; PGPORT sets
# the port (the test runs it on the host network beside the host's own PostgreSQL).
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data && chown postgres: /var/lib/postgresql/data
COPY postgres-start.sh /usr/local/bin/postgres-start
USER postgres
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH PGPORT=5432
CMD ["sh", "/usr/local/bin/postgres-start"]
