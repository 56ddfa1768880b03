# NODE_IMAGE: any image with Node.js 20 and npm (the default is the official slim image; an
# air-gapped build can pass a locally imported base with --build-arg NODE_IMAGE=...).
# No `# syntax=` directive: BuildKit (compose v2) would pull the docker/dockerfile frontend
# image first, and an offline build fails; the built-in frontend has all this file uses.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
# Dependencies' install scripts stay off; the project's patches (patches/, patch-package) apply.
RUN npm ci --no-audit --no-fund --ignore-scripts && npx patch-package
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
# The patched postgres.js (patches/postgres+3.4.9.patch): prod-deps installs without dev tools.
COPY --from=build /app/node_modules/postgres ./node_modules/postgres
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY migrations ./migrations
# A numeric, unprivileged user: works on any base image, with or without /etc/passwd entries.
RUN mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/keymint-server.js"]
CMD ["serve"]
