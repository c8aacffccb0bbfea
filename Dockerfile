# cogo: every daemon and the `cogo` CLI in one image. Multi-stage: the build stage has the
# compilers and -dev packages, the runtime stage only the shared libraries, and runs as an
# unprivileged user. Build: docker build -t cogo .   (deploy/compose/docker-compose.yml uses it)
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libpqxx-dev libpq-dev nlohmann-json3-dev libspdlog-dev \
      libfmt-dev libcpp-httplib-dev libhnswlib-dev libcli11-dev prometheus-cpp-dev libjwt-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY include include
COPY src src
COPY sql sql
COPY config config
COPY share share
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr/local \
      -DCOGO_BUILD_TESTS=OFF -DCOGO_BUILD_BENCH=OFF \
 && cmake --build /build -j "$(nproc)" \
 && DESTDIR=/install cmake --install /build --strip

FROM debian:12-slim
# The runtime libraries of the build stage's -dev packages; curl for the healthchecks; bubblewrap
# and git for cogo-build-test-worker (its sandbox, promotion); Chart.js for the metrics server's
# dashboard.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpqxx-6.4 libpq5 libspdlog1.10 libfmt9 libcpp-httplib0.11 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libjwt0 libssl3 zlib1g ca-certificates curl bubblewrap git \
      libjs-chart.js \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cogo --create-home --shell /usr/sbin/nologin cogo
COPY --from=build /install/usr/local /usr/local
ENV COGO_SQL_DIR=/usr/local/share/cogo/sql \
    COGO_POLICY=/usr/local/etc/cogo/policy.example.json \
    COGO_ROUTING=/usr/local/etc/cogo/routing.example.json \
    COGO_LOG_FORMAT=json
USER cogo
WORKDIR /var/lib/cogo
# Each service names its daemon (docker-compose.yml); SIGTERM drains.
STOPSIGNAL SIGTERM
CMD ["cogo", "--help"]
