// Command grpc is a tiny gRPC backend for trying dlb with dlb.scheme=h2c:
// it serves the standard health service (grpc.health.v1.Health: Check and
// Watch) over HTTP/2 in clear text, as gRPC servers in a private network
// do. Every answer names the replica (its hostname) that gave it, in the
// response header x-replica and in the trailer x-replica-trailer, so the
// spread of calls and the passage of trailers are visible.
//
//	grpcurl -plaintext localhost:8000 grpc.health.v1.Health/Check
//
// Environment:
//
//	PORT   port to listen on (default 50051)
//	GRACE  on SIGTERM, finish calls in flight for up to this long (default 5s)
package main

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func main() {
	port := envOr("PORT", "50051")
	grace, err := time.ParseDuration(envOr("GRACE", "5s"))
	if err != nil {
		log.Fatalf("GRACE=%q: not a duration (try 5s)", os.Getenv("GRACE"))
	}
	host, _ := os.Hostname()

	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			grpc.SetHeader(ctx, metadata.Pairs("x-replica", host))
			grpc.SetTrailer(ctx, metadata.Pairs("x-replica-trailer", host))
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ss.SetHeader(metadata.Pairs("x-replica", host))
			ss.SetTrailer(metadata.Pairs("x-replica-trailer", host))
			return h(srv, ss)
		}),
	)
	hs := health.NewServer() // the server as a whole ("") is SERVING
	hs.SetServingStatus("demo", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)

	lis, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	log.Printf("%s serving gRPC health in clear text (h2c) on :%s", host, port)
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	log.Printf("shutting down, finishing calls for up to %s", grace)
	hs.Shutdown() // watchers hear NOT_SERVING
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		srv.Stop()
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
