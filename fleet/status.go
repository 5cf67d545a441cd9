package fleet

// The fleet's state as the admin API, the dashboard and dlb status show it
// (Fleet.Pools); the JSON field names are the API's.

// PoolStatus is one pool as the admin API shows it (/api/pools, dlb status).
type PoolStatus struct {
	Name     string          `json:"name"`
	Host     string          `json:"host"` // comma-separated host names; empty: any host
	Path     string          `json:"path"`
	Policy   string          `json:"policy"`
	Replicas []ReplicaStatus `json:"replicas"`
	Queue    QueueStatus     `json:"queue"`
}

// QueueStatus is a pool's queue as the admin API shows it: the requests waiting
// for a replica with room (none ready, or all at their limit).
type QueueStatus struct {
	Queued int `json:"queued"`
	Max    int `json:"max"`
	// Shed counts the requests answered 503 (queue full, or waited their
	// timeout), TimedOut those of them that waited their timeout, since
	// dlb started; Shedding is whether it shed one in the last seconds.
	Shed     int64 `json:"shed"`
	TimedOut int64 `json:"timed_out"`
	Shedding bool  `json:"shedding"`
	// WaitMS is the average wait, in milliseconds, of the requests that
	// waited and got a replica.
	WaitMS float64 `json:"wait_ms"`
	// ArrivalPerS and DrainPerS are requests per second over the last
	// seconds: arriving, and served; PerReplicaPerS is the served rate per
	// ready replica. ReplicasNeeded, while the service queues or sheds, is
	// how many replicas the arrival rate needs at that rate each (0 when
	// it does not queue).
	ArrivalPerS    float64 `json:"arrival_per_s"`
	DrainPerS      float64 `json:"drain_per_s"`
	PerReplicaPerS float64 `json:"per_replica_per_s"`
	ReplicasNeeded int     `json:"replicas_needed"`
}

// ReplicaStatus is one replica of a pool as the admin API shows it.
type ReplicaStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Address  string `json:"address"`
	State    string `json:"state"`
	InFlight int64  `json:"in_flight"`
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
	// Limit is the most requests it may have in flight (0: no limit);
	// Adaptive says dlb learns it from the replica's latency.
	Limit    int64 `json:"limit"`
	Adaptive bool  `json:"adaptive,omitempty"`
}
