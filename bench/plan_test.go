package main

import (
	"testing"
	"time"
)

// Every result's floor must be measured earlier in the same run, or the
// table would show no ratio for it.
func TestPlanFloorsComeFirst(t *testing.T) {
	cases := []struct {
		name      string
		scenarios string
		baseline  bool
		wantKinds []string
	}{
		{"standard with floors", "standard", true, []string{"memory", "switch", "fanout", "mixed"}},
		{"standard without floors", "standard", false, []string{"memory", "switch", "fanout", "mixed"}},
		{"each scenario", "switch,fanout,mixed,soak,memory", true, []string{"switch", "fanout", "mixed", "soak", "memory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := &options{scenarios: c.scenarios, baseline: c.baseline, sessions: 10, participants: 4, clients: 2, conc: 4,
				rate: 1, warmup: time.Second, duration: time.Second, reps: 3, soak: time.Minute, window: 10 * time.Second}
			plan := o.plan()
			seen := map[string]bool{}
			kinds := map[string]bool{}
			for _, sc := range plan {
				if seen[sc.Name] {
					t.Errorf("%q twice", sc.Name)
				}
				if sc.Floor != "" && c.baseline && !seen[sc.Floor] {
					t.Errorf("%q: floor %q not measured before it", sc.Name, sc.Floor)
				}
				if !c.baseline && len(sc.Name) > 6 && sc.Name[:6] == "floor:" {
					t.Errorf("%q planned without -baseline", sc.Name)
				}
				seen[sc.Name] = true
				kinds[sc.Kind] = true
			}
			for _, k := range c.wantKinds {
				if !kinds[k] {
					t.Errorf("no %s scenario in %v", k, plan)
				}
			}
		})
	}
}

func TestSoakPlanWindows(t *testing.T) {
	o := &options{scenarios: "soak", baseline: true, sessions: 100, participants: 4, conc: 32, rate: 10,
		warmup: 3 * time.Second, duration: 5 * time.Second, reps: 3, soak: 5 * time.Minute, window: 10 * time.Second}
	plan := o.plan()
	last := plan[len(plan)-1]
	if last.Kind != "soak" || last.Params.Reps != 30 || last.Params.DurationS != 10 || last.Params.Rate != 1000 {
		t.Errorf("soak planned as %+v", last.Params)
	}
	for _, sc := range plan[:len(plan)-1] {
		if sc.Params.Reps != 3 || sc.Params.DurationS != 5 {
			t.Errorf("floor %q runs %d × %vs; want the usual 3 × 5s, not the soak's length", sc.Name, sc.Params.Reps, sc.Params.DurationS)
		}
	}
}
