package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// replica builds a container of service app for the table tests.
func replica(n int, state string) Container {
	return Container{ID: "id" + string(rune('0'+n)), Name: "p_app_" + string(rune('0'+n)), Number: n, State: state, Image: "shop:1"}
}

func batchNames(p Plan) [][]string {
	var out [][]string
	for _, b := range p.Batches {
		out = append(out, containerNames(b))
	}
	return out
}

func TestNewPlan(t *testing.T) {
	run := func(ns ...int) []Container {
		var cs []Container
		for _, n := range ns {
			cs = append(cs, replica(n, "running"))
		}
		return cs
	}
	tests := []struct {
		name    string
		cs      []Container
		batch   int
		want    [][]string
		wantErr string
	}{
		{"all at once", run(2, 1, 3), 0, [][]string{{"p_app_1", "p_app_2", "p_app_3"}}, ""},
		{"batch larger than the service", run(1, 2), 5, [][]string{{"p_app_1", "p_app_2"}}, ""},
		{"batch of 1", run(1, 2, 3, 4), 1, [][]string{{"p_app_1"}, {"p_app_2"}, {"p_app_3"}, {"p_app_4"}}, ""},
		{"batch of 2 of 3", run(1, 2, 3), 2, [][]string{{"p_app_1", "p_app_2"}, {"p_app_3"}}, ""},
		{"no replica", nil, 0, nil, "service app has no running replica to replace: start it first"},
		{"a stopped container", append(run(1), replica(2, "exited")), 0, nil, "p_app_2 (exited); Compose would start them again"},
		{"a created container", append(run(1), replica(2, "created")), 0, nil, "p_app_2 (created)"},
		{"negative batch", run(1), -1, nil, "--batch -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan("app", tt.cs, tt.batch)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewPlan: got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewPlan: got error %v, want batches %q", err, tt.want)
			}
			if got := batchNames(p); !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("NewPlan: got batches %q, want %q", got, tt.want)
			}
		})
	}
}

// The replica count between batches is the service's: each batch scales
// to the old count plus its own size.
func TestPlanSteps(t *testing.T) {
	var cs []Container
	for n := 1; n <= 3; n++ {
		cs = append(cs, replica(n, "running"))
	}
	p, err := NewPlan("app", cs, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps() {
		got = append(got, p.Describe(s, "up", nil, time.Minute))
	}
	want := []string{
		"start 2 new replicas of app beside the 3 running (up)",
		"wait until dlb has 2 new replicas ready (at most 1m0s)",
		"stop p_app_1, p_app_2 (dlb drains them; each stops within its stop_grace_period)",
		"remove p_app_1, p_app_2",
		"start 1 new replica of app beside the 3 running (up)",
		"wait until dlb has 1 new replica ready (at most 1m0s)",
		"stop p_app_3 (dlb drains them; each stops within its stop_grace_period)",
		"remove p_app_3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("steps:\n got  %q\n want %q", got, want)
	}
	if s := p.Steps(); s[0].Scale != 5 || s[4].Scale != 4 {
		t.Errorf("scales: got %d and %d, want 5 and 4", s[0].Scale, s[4].Scale)
	}
	if got := p.Describe(p.Steps()[1], "up", []string{"p_app_4", "p_app_5"}, time.Minute); got != "wait until dlb has p_app_4, p_app_5 ready (at most 1m0s)" {
		t.Errorf("wait step with the new names: got %q", got)
	}
}
