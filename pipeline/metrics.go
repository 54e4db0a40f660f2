package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is the Prometheus Observer. Every series carries the adapter
// type, so one dashboard serves every deployment.
type Metrics struct {
	received     prometheus.Counter
	handled      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	phase        *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	retries      prometheus.Counter
	deadLettered prometheus.Counter
	reports      prometheus.Counter
	delivery     *prometheus.HistogramVec
	kube         *prometheus.HistogramVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the pipeline's metrics with reg.
func NewMetrics(reg prometheus.Registerer, adapterType string) *Metrics {
	labels := prometheus.Labels{"adapter_type": adapterType}
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "hyperfleet_adapter_events_received_total",
			Help: "Messages received from the event source.", ConstLabels: labels}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hyperfleet_adapter_events_handled_total",
			Help: "Events handled, by outcome (reconciled, skipped, gone, superseded, preconditions_not_met, failed, requeued).", ConstLabels: labels}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hyperfleet_adapter_event_duration_seconds",
			Help: "Time to handle one event, all tries included, by outcome.", ConstLabels: labels, Buckets: buckets}, []string{"outcome"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hyperfleet_adapter_phase_duration_seconds",
			Help: "Time spent in each phase of one try: read_resource, build, deliver, await_status, report.", ConstLabels: labels, Buckets: buckets}, []string{"phase"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hyperfleet_adapter_events_in_flight",
			Help: "Events being handled now.", ConstLabels: labels}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "hyperfleet_adapter_retries_total",
			Help: "Tries repeated after a transient failure.", ConstLabels: labels}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "hyperfleet_adapter_dead_lettered_total",
			Help: "Events dead-lettered (permanent failure or retries exhausted).", ConstLabels: labels}),
		reports: prometheus.NewCounter(prometheus.CounterOpts{Name: "hyperfleet_adapter_status_reports_total",
			Help: "Status events published.", ConstLabels: labels}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hyperfleet_adapter_delivery_call_duration_seconds",
			Help: "Delivery backend calls (Maestro, or Kubernetes for job delivery) by op (apply, delete, get) and result (ok, stale, error).", ConstLabels: labels, Buckets: buckets}, []string{"op", "result"}),
		kube: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hyperfleet_adapter_kube_request_duration_seconds",
			Help: "Kubernetes API calls of job delivery, by verb, resource and result.", ConstLabels: labels, Buckets: buckets}, []string{"verb", "resource", "result"}),
	}
	reg.MustRegister(m.received, m.handled, m.duration, m.phase, m.inFlight, m.retries, m.deadLettered, m.reports, m.delivery, m.kube)
	return m
}

func (m *Metrics) Received() { m.received.Inc() }
func (m *Metrics) Handled(o Outcome, d time.Duration) {
	m.handled.WithLabelValues(string(o)).Inc()
	m.duration.WithLabelValues(string(o)).Observe(d.Seconds())
}
func (m *Metrics) Phase(name string, d time.Duration) {
	m.phase.WithLabelValues(name).Observe(d.Seconds())
}
func (m *Metrics) InFlight(delta int) { m.inFlight.Add(float64(delta)) }
func (m *Metrics) Retried()           { m.retries.Inc() }
func (m *Metrics) DeadLettered()      { m.deadLettered.Inc() }
func (m *Metrics) StatusPublished()   { m.reports.Inc() }

// DeliveryCall implements maestro.CallObserver.
func (m *Metrics) DeliveryCall(op, result string, d time.Duration) {
	m.delivery.WithLabelValues(op, result).Observe(d.Seconds())
}

// KubeRequest implements jobs.Observer (job delivery's Kubernetes calls).
func (m *Metrics) KubeRequest(verb, resource, result string, d time.Duration) {
	m.kube.WithLabelValues(verb, resource, result).Observe(d.Seconds())
}
