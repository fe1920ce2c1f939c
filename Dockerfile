# Go Chat backend: multi-stage image.
#   build:   full dependency tree from the lock file, TypeScript compiled to dist/
#   runtime: production dependencies only, compiled JavaScript and the SQL migrations,
#            run as the unprivileged `node` user.
# Build with: docker build -t go-chat-backend .

# ---------------------------------------------------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app

# Dependencies first so this layer is cached until the lock file changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json tsconfig.client.json ./
COPY src ./src
COPY scripts ./scripts
RUN npm run build

# ---------------------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0
WORKDIR /app

# Production dependencies only. Optional dependencies are left out: the embedded
# database is a development convenience and production always sets DATABASE_URL.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund \
    && npm cache clean --force

# Application files stay owned by root (read-only for the process user).
# Migrations are read at runtime from <app root>/sql.
COPY --from=build /app/dist ./dist
COPY sql ./sql

USER node
EXPOSE 8080
STOPSIGNAL SIGTERM

# No curl in slim images: Node's own fetch probes /health (200 healthy, 503 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form: Node is PID 1 and receives SIGTERM directly for the graceful drain
# (bounded by SHUTDOWN_GRACE_SECONDS, default 25).
CMD ["node", "dist/main.js"]
