# nginx from Debian's archive for the compose test (tests/deploy/test_compose.py), in place of the registry's
# nginx:1.27-alpine; the compose file's command and configuration are used as they are.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/*
CMD ["nginx", "-g", "daemon off;"]
