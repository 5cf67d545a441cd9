package rollout

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dlb-lb/dlb/admin"
)

// Admin is the admin API of the dlb in front of the service: its pools, and
// which dlb answers.
type Admin interface {
	// Pools returns /api/pools.
	Pools(ctx context.Context) ([]admin.Pool, error)
	// Self returns /api/self; false (and no error) when the dlb has none.
	Self(ctx context.Context) (admin.Self, bool, error)
}

// Gate tells whether dlb has the new replicas ready.
type Gate interface {
	// States returns dlb's state of each of ids it knows ("ready",
	// "starting", ...); an id it does not know is absent.
	States(ctx context.Context, ids []string) (map[string]string, error)
}

// PoolGate is the Gate of an application service: dlb's pools list the new
// replicas, and their state.
type PoolGate struct{ Admin Admin }

// States implements Gate from /api/pools.
func (g PoolGate) States(ctx context.Context, ids []string) (map[string]string, error) {
	pools, err := g.Admin.Pools(ctx)
	if err != nil {
		return nil, err
	}
	return poolStates(pools, ids), nil
}

// poolStates picks the states of ids out of pools.
func poolStates(pools []admin.Pool, ids []string) map[string]string {
	states := map[string]string{}
	for _, p := range pools {
		for _, r := range p.Replicas {
			if slices.Contains(ids, r.ID) {
				states[r.ID] = r.State
			}
		}
	}
	return states
}

// SelfGate is the Gate of dlb's own service: a new dlb never appears in the
// pools; it is ready once it answers /api/self (on the admin address, whose
// socket it takes over from the old dlb) and serves.
type SelfGate struct{ Admin Admin }

// States implements Gate from /api/self: the new dlb that answers is
// "ready" when it serves, else "starting".
func (g SelfGate) States(ctx context.Context, ids []string) (map[string]string, error) {
	self, ok, err := g.Admin.Self(ctx)
	if err != nil || !ok {
		return nil, err
	}
	states := map[string]string{}
	if slices.Contains(ids, self.ID) {
		states[self.ID] = "starting"
		if self.Serving {
			states[self.ID] = "ready"
		}
	}
	return states, nil
}

// ChooseGate picks the Gate for a service whose running replicas are old:
// SelfGate when the dlb at the admin API is one of them (the service is dlb
// itself), else PoolGate, which needs dlb to balance at least one of them.
func ChooseGate(ctx context.Context, a Admin, url string, service string, old []Container) (g Gate, self bool, err error) {
	ids := make([]string, len(old))
	for i, c := range old {
		ids[i] = c.ID
	}
	s, ok, err := a.Self(ctx)
	if err != nil {
		return nil, false, err
	}
	if ok && s.ID != "" && slices.Contains(ids, s.ID) {
		return SelfGate{a}, true, nil
	}
	states, err := PoolGate{a}.States(ctx, ids)
	if err != nil {
		return nil, false, err
	}
	if len(states) == 0 {
		return nil, false, fmt.Errorf("service %s is not behind the dlb at %s: none of its replicas (%s) is in its pools; "+
			"label the service dlb.enable=true and put it on dlb's --network, or give --admin-url of the dlb in front of it", service, url, names(old))
	}
	return PoolGate{a}, false, nil
}

// HTTPAdmin is the Admin at an admin API address, as dlb status reads it.
type HTTPAdmin struct {
	URL     string        // e.g. http://127.0.0.1:8080
	Token   string        // dlb's --admin-token, if it has one
	Timeout time.Duration // of one request; 0: 5 s
}

// Pools implements Admin.
func (h HTTPAdmin) Pools(ctx context.Context) ([]admin.Pool, error) {
	return admin.FetchPools(ctx, h.URL, h.Token, h.Timeout)
}

// Self implements Admin.
func (h HTTPAdmin) Self(ctx context.Context) (admin.Self, bool, error) {
	var s admin.Self
	ok, err := admin.Fetch(ctx, h.URL, h.Token, "/api/self", h.Timeout, &s)
	return s, ok, err
}
