# syntax=docker/dockerfile:1
# comfy-compat-proxy: a ComfyUI-compatible server backed by Comfy Cloud.
# test/docker/dockerfile.test.ts lints this file and rehearses its steps outside Docker.

FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# BuildKit cache mount: faster rebuilds, and npm's cache never lands in a layer.
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY config ./config
COPY src ./src
RUN npm run build

FROM node:22-slim AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8188
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund
COPY config ./config
COPY --from=build /app/dist ./dist
# The file store by default (README "State"): the database on a volume, so that a new container of the
# same proxy keeps client prompt ids and submitters. REDIS_URL, when set, wins over it.
ENV STATE_FILE=/data/state.db
RUN mkdir -p /data && chown node:node /data
VOLUME /data
# Files stay root-owned, so the process cannot modify its own code.
USER node
EXPOSE 8188
# No curl in slim images: probe with node's own fetch, on whatever PORT is set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8188) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node directly (not npm start): signals reach the server, which closes gracefully on SIGTERM.
CMD ["node", "dist/server.js"]
