// Package telemetry holds the Prometheus metrics every server exports.
package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// GRPCMetrics count and time RPCs by service, method and code.
type GRPCMetrics struct {
	Handled  *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

var (
	once    sync.Once
	metrics *GRPCMetrics
)

// GRPC returns the process-wide RPC metrics, registered once with the default registry, so that several
// services hosted in one process share them.
func GRPC() *GRPCMetrics {
	once.Do(func() {
		metrics = &GRPCMetrics{
			Handled: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "grpc_server_handled_total",
				Help: "RPCs completed on the server, by service, method and status code.",
			}, []string{"grpc_service", "grpc_method", "grpc_code"}),
			Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "grpc_server_handling_seconds",
				Help:    "Time to handle an RPC on the server, by service and method.",
				Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			}, []string{"grpc_service", "grpc_method"}),
		}
		prometheus.MustRegister(metrics.Handled, metrics.Duration)
	})
	return metrics
}
