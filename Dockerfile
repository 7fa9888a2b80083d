# Sluice gateway image.
#
#   docker build -t sluice .
#   docker run -p 8080:8080 -e OPENAI_API_KEY \
#     -v "$PWD/my-config.yaml:/etc/sluice/config.yaml:ro" sluice
#
# The config file is mounted at /etc/sluice/config.yaml (start from config/example.yaml).
# Inside a container its server.host must be 0.0.0.0: the default, 127.0.0.1, is only reachable
# from inside the container itself. Keep server.port at 8080 or change EXPOSE and HEALTHCHECK.
# On SIGTERM Sluice drains for server.drainTimeoutMs (default 30 s), longer than `docker stop`'s
# default 10 s grace period: use `docker stop -t 35` (or terminationGracePeriodSeconds in Kubernetes).
# Other commands run through the same launcher, e.g. the request log's migrations as a deploy step:
#   docker run --rm -e DATABASE_URL -v "$PWD/my-config.yaml:/etc/sluice/config.yaml:ro" sluice \
#     node bin/sluice.mjs migrate --config /etc/sluice/config.yaml

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production
# Optional, when the container's memory limit is tight: glibc's malloc keeps memory freed after a
# burst of streams for reuse, jemalloc gives it back to the system (docs/benchmarks.md, "Memory
# after a burst of slow streams"). To use it, uncomment both lines (on arm64 the library is in
# /usr/lib/aarch64-linux-gnu/). Not built or run on the machine this was measured on.
# RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*
# ENV LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=background_thread:true
WORKDIR /app
# Owned by root, so the process running as `node` cannot modify its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
# bin/sluice.mjs: the launcher, which checks the Node.js version before loading the TypeScript.
COPY bin ./bin
COPY src ./src
COPY config ./config
# The request log's embedded PGlite and spill directory default to ./data: the one place the
# process may write. Mount a volume here to keep them across restarts (with Postgres, set
# DATABASE_URL; the spill directory still lives here).
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 8080
# Slim images have no curl; node's fetch does the probe.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "bin/sluice.mjs", "--config", "/etc/sluice/config.yaml"]
