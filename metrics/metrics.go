// Package metrics counts dlb's traffic for Prometheus: requests by service,
// replica and status class, their durations, retries, ejections, replicas by
// state, Docker events, and how long new replicas wait for their first
// request. It is a proxy.Observer; everything is on a private registry.
package metrics

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/certs"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds dlb's metrics and serves them. Create it with New; it is
// safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	requests     *prometheus.CounterVec   // service, replica, code
	duration     *prometheus.HistogramVec // service
	retries      *prometheus.CounterVec   // service
	retryRefused *prometheus.CounterVec   // service
	ejectCapped  *prometheus.CounterVec   // service
	ejections    *prometheus.CounterVec   // service
	readyToFirst *prometheus.HistogramVec // service
	eventToReady *prometheus.HistogramVec // service
	eventToFirst *prometheus.HistogramVec // service
	dockerEvents *prometheus.CounterVec   // action
	certificates *prometheus.CounterVec   // kind, result
	refused      prometheus.Counter       // connections over --max-conns

	// series caches the request counters of each replica, so that a
	// request costs no label lookup. A replica's entry and series go when
	// it leaves (Forget).
	series   sync.Map   // *balancer.Upstream -> *replicaSeries
	seriesMu sync.Mutex // held to add to series and to forget

	// services caches the series of each service (services are never
	// removed, so neither are these); they exist, at 0, from the first
	// request of the service on.
	services sync.Map // service name -> *serviceSeries
}

// serviceSeries is one service's series.
type serviceSeries struct {
	duration, readyToFirst, eventToReady, eventToFirst prometheus.Observer
	retries, ejections, retryRefused, ejectCapped      prometheus.Counter
}

var (
	_ proxy.Observer       = (*Metrics)(nil)
	_ prometheus.Collector = (*poolCollector)(nil)
	_ http.Handler         = (*Metrics)(nil)
)

// codeClasses are the values of the code label: the status class.
var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// classOf returns the index in codeClasses of a status; anything outside
// 100-599 counts as 5xx (dlb never sends one).
func classOf(status int) int {
	if status < 100 || status > 599 {
		return 4
	}
	return status/100 - 1
}

// replicaSeries is one replica's request counters, one per status class.
type replicaSeries struct {
	service, replica string
	mu               sync.RWMutex
	gone             bool // the series were deleted: count no more here
	codes            [len(codeClasses)]prometheus.Counter
}

// Buckets of the request duration histogram, in seconds.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Buckets of the ready-to-first-request histogram, in seconds.
var readyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// Buckets of the histograms that start at a Docker event, in seconds: fine
// around the 20 ms a replica should take to become routable.
var eventBuckets = []float64{.002, .005, .01, .015, .02, .03, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// Pools lists the pools whose replicas the metrics report at each scrape;
// *balancer.Pools is one.
type Pools interface {
	All() []*balancer.Pool
}

var _ Pools = (*balancer.Pools)(nil)

// New returns dlb's metrics, reading the replicas' states and requests in
// flight from pools at each scrape.
func New(pools Pools) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dlb_requests_total",
			Help: "Requests handled, by service, replica (container name; empty when none answered: no route, no ready replica, or it left) and status class.",
		}, []string{"service", "replica", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dlb_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response, by service (empty: no route).",
			Buckets: durationBuckets,
		}, []string{"service"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dlb_retries_total",
			Help: "Requests sent again to another replica after one failed, by service.",
		}, []string{"service"}),
		retryRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dlb_retries_refused_total",
			Help: "Failed requests answered without the retry they were due because the service's retry budget (20% of its recent requests, plus 10 a second) was spent, by service.",
		}, []string{"service"}),
		ejectCapped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dlb_ejections_refused_total",
			Help: "Replicas that reset a connection but stayed in their pool because the ejection cap keeps enough of the serving replicas in (health.DefaultMaxEjectedPercent: at most half out), by service.",
		}, []string{"service"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dlb_ejections_total",
			Help: "Replicas taken out of their pool after refusing or resetting a connection, by service.",
		}, []string{"service"}),
		readyToFirst: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dlb_ready_to_first_request_seconds",
			Help:    "Time from a replica turning ready to the first request routed to it, by service.",
			Buckets: readyBuckets,
		}, []string{"service"}),
		eventToReady: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dlb_event_to_ready_seconds",
			Help:    "Time from the Docker event that announced a replica (start, or health_status: healthy) to the replica turning ready, routable, by service.",
			Buckets: eventBuckets,
		}, []string{"service"}),
		eventToFirst: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dlb_event_to_first_request_seconds",
			Help:    "Time from the Docker event that announced a replica to the first request routed to it, by service.",
			Buckets: eventBuckets,
		}, []string{"service"}),
		dockerEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dlb_docker_events_total",
			Help: "Docker Engine events handled, by action.",
		}, []string{"action"}),
		certificates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dlb_certificates_total",
			Help: "Certificates asked of the ACME CA, by kind (obtain, renew) and result (success, failure).",
		}, []string{"kind", "result"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dlb_refused_connections_total",
			Help: "Client connections closed at once because dlb had --max-conns open, or their client address held its share of them (--max-conns-client-share).",
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.retries, m.retryRefused, m.ejectCapped, m.ejections, m.readyToFirst, m.eventToReady, m.eventToFirst, m.dockerEvents, m.certificates, m.refused,
		&poolCollector{pools: pools},
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// Registry is the private registry every dlb metric is on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ServeHTTP serves the metrics in the Prometheus exposition format (text,
// or whatever the scraper negotiates).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.handler.ServeHTTP(w, r)
}

// Observe counts one request. It is the proxy's Observer.
func (m *Metrics) Observe(_ *http.Request, e *proxy.Exchange) {
	service := ""
	if e.Route != nil {
		service = e.Route.Service
	}
	svc := m.service(service)
	svc.duration.Observe(e.Duration.Seconds())
	if e.Retries > 0 {
		svc.retries.Add(float64(e.Retries))
	}
	if e.RetryRefused {
		svc.retryRefused.Inc()
	}
	if e.EjectionCapped {
		svc.ejectCapped.Inc()
	}
	if u := e.FirstFor; u != nil {
		if since := u.ReadySince(); !since.IsZero() && !e.Start.Before(since) {
			svc.readyToFirst.Observe(e.Start.Sub(since).Seconds())
		}
		if at := u.Announced(); !at.IsZero() && !e.Start.Before(at) {
			svc.eventToFirst.Observe(e.Start.Sub(at).Seconds())
		}
	}
	class := classOf(e.Status)
	if u := e.Upstream; u != nil && m.countReplica(service, u, class) {
		return
	}
	m.requests.WithLabelValues(service, "", codeClasses[class]).Inc()
}

// service returns the series of a service, making them the first time.
func (m *Metrics) service(name string) *serviceSeries {
	if v, ok := m.services.Load(name); ok {
		return v.(*serviceSeries)
	}
	v, _ := m.services.LoadOrStore(name, &serviceSeries{
		duration:     m.duration.WithLabelValues(name),
		readyToFirst: m.readyToFirst.WithLabelValues(name),
		eventToReady: m.eventToReady.WithLabelValues(name),
		eventToFirst: m.eventToFirst.WithLabelValues(name),
		retries:      m.retries.WithLabelValues(name),
		ejections:    m.ejections.WithLabelValues(name),
		retryRefused: m.retryRefused.WithLabelValues(name),
		ejectCapped:  m.ejectCapped.WithLabelValues(name),
	})
	return v.(*serviceSeries)
}

// countReplica counts a request under its replica and reports whether it
// did: not when the replica has left its pool, whose series are gone.
func (m *Metrics) countReplica(service string, u *balancer.Upstream, class int) bool {
	v, ok := m.series.Load(u)
	if !ok {
		if v = m.newSeries(service, u); v == nil {
			return false
		}
	}
	s := v.(*replicaSeries)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.gone {
		return false
	}
	s.codes[class].Inc()
	return true
}

// newSeries makes the series of a replica's first request, unless it has
// left its pool (then it returns nil).
func (m *Metrics) newSeries(service string, u *balancer.Upstream) any {
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	if v, ok := m.series.Load(u); ok {
		return v
	}
	// The pool marks a replica removed before Forget runs, and Forget
	// takes seriesMu: either Forget sees this entry, or this sees Removed.
	if u.Removed() {
		return nil
	}
	s := &replicaSeries{service: service, replica: u.Name()}
	for i, c := range codeClasses {
		s.codes[i] = m.requests.WithLabelValues(service, u.Name(), c)
	}
	m.series.Store(u, s)
	return s
}

// ReplicaLeft deletes the series of a replica that left its pool (call it
// after the pool's Remove), so that the labels stay bounded by the
// replicas that exist. The series are those of its name, a container's
// name: a replica that has the name now (Compose recreating a container)
// starts afresh. It is the fleet's Observer.
func (m *Metrics) ReplicaLeft(u *balancer.Upstream) {
	name := u.Name()
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	m.series.Range(func(k, v any) bool {
		if s := v.(*replicaSeries); k == u || s.replica == name {
			s.mu.Lock()
			s.gone = true // no more counting on counters about to be deleted
			s.mu.Unlock()
			m.series.Delete(k)
		}
		return true
	})
	m.requests.DeletePartialMatch(prometheus.Labels{"replica": name})
}

// Ejected counts a passive ejection. It is the proxy's Observer.
func (m *Metrics) Ejected(route *proxy.Route, _ *balancer.Upstream) {
	m.service(route.Service).ejections.Inc()
}

// ReplicaReady records how long after the Docker event that announced it
// a replica of service turned ready.
func (m *Metrics) ReplicaReady(service string, sinceEvent time.Duration) {
	m.service(service).eventToReady.Observe(sinceEvent.Seconds())
}

// SourceEvent counts an event from the Docker Engine, by its action
// ("start", "die", "health_status: healthy"...); it is the fleet's
// Observer. The Watcher subscribes to a fixed set of actions, so the label
// stays bounded.
func (m *Metrics) SourceEvent(_, action string) {
	m.dockerEvents.WithLabelValues(strings.TrimSpace(action)).Inc()
}

// SitesChanged does nothing: metrics count no sites. It is the fleet's
// Observer.
func (m *Metrics) SitesChanged([]certs.Site) {}

// Certificate counts one certificate asked of the ACME CA: a renewal or a
// first obtain, and whether the CA issued it.
func (m *Metrics) Certificate(renewal, ok bool) {
	kind, result := "obtain", "success"
	if renewal {
		kind = "renew"
	}
	if !ok {
		result = "failure"
	}
	m.certificates.WithLabelValues(kind, result).Inc()
}

// RefusedConnection counts a client connection refused over --max-conns;
// it is listener.ConnLimit's refused.
func (m *Metrics) RefusedConnection() { m.refused.Inc() }

// poolCollector reports what the pools hold at scrape time: replicas by
// state, requests in flight to each service's replicas and their limits,
// and each service's queue.
type poolCollector struct {
	pools Pools
}

var (
	replicasDesc = prometheus.NewDesc("dlb_replicas",
		"Replicas in each service's pool, by state (starting, ready, draining, down).",
		[]string{"service", "state"}, nil)
	inFlightDesc = prometheus.NewDesc("dlb_in_flight_requests",
		"Requests being served by each service's replicas now (not counting those queued for a replica).",
		[]string{"service"}, nil)
	limitDesc = prometheus.NewDesc("dlb_in_flight_limit",
		"The sum of the limits of each service's replicas that have one (dlb.max_inflight; an adaptive one as learned now); 0: none has a limit.",
		[]string{"service"}, nil)
	queuedDesc = prometheus.NewDesc("dlb_queued_requests",
		"Requests waiting in each service's queue for a replica with room (none ready, or all at their dlb.max_inflight).",
		[]string{"service"}, nil)
	queueMaxDesc = prometheus.NewDesc("dlb_queue_max",
		"The most requests each service's queue holds (dlb.queue.max).",
		[]string{"service"}, nil)
	shedDesc = prometheus.NewDesc("dlb_shed_requests_total",
		"Requests answered 503 with Retry-After by each service's queue: it was full, or they waited their timeout.",
		[]string{"service"}, nil)
	queueTimeoutsDesc = prometheus.NewDesc("dlb_queue_timeouts_total",
		"Requests shed for waiting their queue timeout (dlb.queue.timeout, --queue-timeout), by service.",
		[]string{"service"}, nil)
	queueWaitDesc = prometheus.NewDesc("dlb_queue_wait_seconds",
		"Time the requests that waited in each service's queue waited before a replica took them.",
		[]string{"service"}, nil)
	neededDesc = prometheus.NewDesc("dlb_replicas_needed",
		"While a service queues or sheds: how many replicas its arrival rate needs at the throughput each replica has now; 0 otherwise.",
		[]string{"service"}, nil)
)

// states are the values of dlb_replicas' state label, always all reported.
var states = [...]balancer.State{balancer.Starting, balancer.Ready, balancer.Draining, balancer.Down}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{replicasDesc, inFlightDesc, limitDesc, queuedDesc, queueMaxDesc, shedDesc, queueTimeoutsDesc, queueWaitDesc, neededDesc} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.pools.All() {
		count := make(map[balancer.State]int, len(states))
		var inFlight, limit int64
		for _, u := range p.Upstreams() {
			count[u.State()]++
			inFlight += u.InFlight()
			limit += u.Limit()
		}
		for _, s := range states {
			ch <- prometheus.MustNewConstMetric(replicasDesc, prometheus.GaugeValue, float64(count[s]), p.Name(), s.String())
		}
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(inFlight), p.Name())
		ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(limit), p.Name())
		q := p.QueueStats()
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(q.Queued), p.Name())
		ch <- prometheus.MustNewConstMetric(queueMaxDesc, prometheus.GaugeValue, float64(q.Max), p.Name())
		ch <- prometheus.MustNewConstMetric(shedDesc, prometheus.CounterValue, float64(q.Shed), p.Name())
		ch <- prometheus.MustNewConstMetric(queueTimeoutsDesc, prometheus.CounterValue, float64(q.TimedOut), p.Name())
		ch <- prometheus.MustNewConstSummary(queueWaitDesc, uint64(q.Served), q.Waited.Seconds(), nil, p.Name())
		ch <- prometheus.MustNewConstMetric(neededDesc, prometheus.GaugeValue, float64(q.Needed), p.Name())
	}
}
