# pyexec container image. Two stages on debian:bookworm-slim: "build" compiles
# pyexecd with CMake; the runtime stage holds only the runtime libraries,
# Debian's python3.11 with numpy and pandas, and pyexecd (no compiler, no
# build tree). Verified under runc and gVisor by tests/container/run.sh.

FROM debian:bookworm-slim AS build
# The build packages of .ci/install-deps (cmocka and libssl-dev only because
# configuring the tree registers the unit tests and pyexec-bench; nothing here
# builds or runs them).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config \
      libuv1-dev libhttp-parser-dev libjansson-dev libseccomp-dev libcmocka-dev libssl-dev \
      python3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target pyexecd -j"$(nproc)" \
 && strip /build/server/pyexecd

FROM debian:bookworm-slim
# Charts: --build-arg PYEXEC_CHARTS=python3-matplotlib adds Debian's
# matplotlib. Not by default: Debian's fonttools, which it needs, pulls in scipy,
# sympy and a C++ compiler (pythran), 363 MB -> 1434 MB (README, Warm modules).
ARG PYEXEC_CHARTS=
# More Debian packages for scripts to import, space-separated, e.g.
# --build-arg PYEXEC_EXTRA_PACKAGES="python3-scipy python3-sklearn"; warm them
# with --preload (PYEXEC_PRELOAD).
ARG PYEXEC_EXTRA_PACKAGES=
# Runtime libraries only; --no-install-recommends keeps pandas' optional
# extras (lxml, ...) out. Where Landlock is missing (gVisor) the
# children's file confinement is the uid drop alone, so leave no world-writable
# directory in the image (/tmp, /var/tmp, /run/lock): the workers run as root
# and make their scratch dirs under /tmp themselves.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libhttp-parser2.9 libjansson4 libseccomp2 libpython3.11 \
      python3-numpy python3-pandas tini $PYEXEC_CHARTS $PYEXEC_EXTRA_PACKAGES \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && find / -xdev -type d -perm -0002 -exec chmod o-w {} +

COPY --from=build /build/server/pyexecd /usr/local/bin/pyexecd
COPY deploy/container-entrypoint.sh /usr/local/bin/pyexec-entrypoint

# Cloud Run sets PORT; 8080 is also pyexecd's default. pyexecd starts as root
# only so that it can drop every child to uid 65534 (--user).
ENV PORT=8080
EXPOSE 8080
STOPSIGNAL SIGTERM
# Cheap: Debian's python3 is already in the image for numpy; no curl needed.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/bin/python3", "-I", "-S", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=2)"]
# The entrypoint takes the write bit off the runtime's /tmp and /dev/shm,
# passes pyexecd only its own variables, and execs tini as PID 1: pyexecd
# does not reap the orphans a dying worker leaves (its spare child), tini
# does, and forwards SIGTERM to pyexecd (drain, exit 0).
ENTRYPOINT ["/usr/local/bin/pyexec-entrypoint"]
