# dlb's image: the static binary and nothing else. Build the binary on the host
# first (`make images` does both); no base image is pulled.
#   CGO_ENABLED=0 go build -trimpath -o bin/dlb ./cmd/dlb
FROM scratch
COPY bin/dlb /dlb
EXPOSE 80 443 8080
ENTRYPOINT ["/dlb"]
