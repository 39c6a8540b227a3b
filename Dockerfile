# syntax=docker/dockerfile:1
# livedex: build the Rust engine and the TypeScript, then run on a slim Node LTS image.
#   docker build -t livedex .
#   docker run -p 8000:8000 -e LIVEDEX_AUTH_TOKEN=<secret> -v "$PWD/docs:/docs:ro" -v livedex-data:/data livedex
# APP_CONFIG picks the app file (a template under templates/ or one you mount).
# `tests/dockerfile.test.ts` lints this file and replays its steps without a Docker engine
# (scripts/docker-dry-run.mjs); lines after a `# dry-run: host` comment provision the system
# and are left to the host there.

ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-trixie-slim AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# dry-run: host
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# dry-run: host
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
# dry-run: host
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain stable
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
# As the README installs: `prepare` builds the engine (cargo) and compiles the TypeScript into
# dist/. (`npm install` keeps to package-lock.json; `npm ci` trips over the platform packages
# that npm leaves out of the lock file for optional native dependencies.)
RUN npm install --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:${NODE_VERSION}-trixie-slim AS runtime
ENV NODE_ENV=production \
    LIVEDEX_DATA_DIR=/data \
    LIVEDEX_DOCS=/docs \
    LIVEDEX_HOST=0.0.0.0 \
    LIVEDEX_PORT=8000 \
    APP_CONFIG=templates/document-store/app.yaml
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/build ./build
COPY templates ./templates
# dry-run: host
RUN mkdir -p /data /docs && chown 1000:1000 /data
# The image's `node` user.
USER 1000:1000
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.LIVEDEX_PORT || 8000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
# `serve` with no source reads the app file named by APP_CONFIG.
CMD ["serve"]
