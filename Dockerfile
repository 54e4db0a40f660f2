# Builds both binaries static and runs them as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/adapter ./cmd/adapter && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/maestro-cli ./cmd/maestro-cli

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/adapter /out/maestro-cli /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/adapter"]
CMD ["run"]
