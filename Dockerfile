# syntax=docker/dockerfile:1
# Worker images, running the built package with plain node. `cpu`: the workflows, curate and
# report (workers/cpu.ts). `gpu`: sample, judge, train and evaluate on one CUDA device
# (workers/gpu.ts), with onnxruntime-node's CUDA provider and the LoRA trainer's Python
# environment. docker-compose.yml builds both; by hand:
#   docker build --target gpu -t selfreward-worker:gpu .

ARG NODE_VERSION=20.20.2
# CUDA 12 with cuDNN 9: what onnxruntime-node's CUDA 12 provider loads.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM node:${NODE_VERSION}-bookworm-slim AS node

# The package's JavaScript, built once from the TypeScript sources; the workers run it with
# plain node.
FROM node AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
COPY activities activities
COPY cli cli
COPY client client
COPY config config
COPY contract contract
COPY models models
COPY store store
COPY workers workers
COPY workflows workflows
RUN npm run build

FROM node AS cpu
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Runtime dependencies only; onnxruntime-node's CUDA provider is a download a CPU worker never uses.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist /app/dist
# The shapes pack, so a first round runs before any real model is mounted (`--preset shapes`).
COPY packs/shapes /app/packs/shapes
# Scratch for downloads; docker-compose.yml mounts a volume here (SELF_REWARD_WORK_DIR).
RUN mkdir -p /data/work && chown 1000:1000 /data/work
USER 1000:1000
CMD ["node", "dist/workers/cpu.js"]

FROM ${CUDA_IMAGE} AS gpu
# Node from the official image, the same runtime as the CPU worker's.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The trainer's environment first: the largest layer and the one that changes least. torch
# comes from the default index, where the pinned version is the CUDA build (it brings its own
# CUDA libraries).
COPY python/requirements.txt python/requirements.txt
COPY scripts/setup-python.sh scripts/setup-python.sh
RUN PIP_NO_CACHE_DIR=1 scripts/setup-python.sh
COPY package.json package-lock.json .npmrc ./
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY python/loratrain python/loratrain
COPY --from=build /app/dist /app/dist
COPY packs/shapes /app/packs/shapes
RUN mkdir -p /data/work && chown 1000:1000 /data/work
USER 1000:1000
CMD ["node", "dist/workers/gpu.js"]
