# The Berth image: berth-registry (the entrypoint: `serve`, `gc`) and berth-operator, on Node.js 20.
#   docker build -t berth:dev .
# NODE_IMAGE may name any Debian-based Node.js 20 image with npm (the tests build on a local stand-in).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
# Only what the build needs reaches the context (.dockerignore).
COPY . .
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && chmod 0755 dist/registry/cli.js dist/operator/main.js \
 && mkdir -p /image/app /image/usr/local/bin /image/var/lib/berth \
 && mv package.json node_modules dist /image/app/ \
 && ln -s /app/dist/registry/cli.js /image/usr/local/bin/berth-registry \
 && ln -s /app/dist/operator/main.js /image/usr/local/bin/berth-operator

FROM ${NODE_IMAGE}
# The application under /app and the two commands on PATH, owned by root; the working directory by the user.
COPY --from=build /image/ /
COPY --from=build --chown=65532:65532 /image/var/lib/berth /var/lib/berth
# Without a configuration the registry stores under ./data: here, /var/lib/berth/data (the operator mounts its own).
WORKDIR /var/lib/berth
ENV NODE_ENV=production
USER 65532:65532
EXPOSE 5000 5001
ENTRYPOINT ["berth-registry"]
CMD ["serve"]
