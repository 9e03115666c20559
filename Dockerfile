# Build: docker build -t synckairos .
# Run:   docker run -p 3000:3000 -e REDIS_URL=redis://redis:6379 synckairos
# (without REDIS_URL it starts an embedded single-instance dev-mode Redis).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static: no cgo, so the binary runs on an image without libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/synckairos .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/synckairos /synckairos
USER nonroot:nonroot
ENV PORT=3000
EXPOSE 3000
# The image has no shell or curl: the binary checks its own /health.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/synckairos", "healthcheck"]
ENTRYPOINT ["/synckairos"]
