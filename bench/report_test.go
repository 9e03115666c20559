package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{1, 100, 2}, 2}, // one bad repetition does not move it
	}
	for _, c := range cases {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestSummarizeTakesMedianOfReps(t *testing.T) {
	r := &Result{Reps: []Rep{
		{Throughput: 900, Latency: map[string]Latency{"switch": {Count: 10, P50MS: 1, P99MS: 9, MaxMS: 50}}},
		{Throughput: 1000, Latency: map[string]Latency{"switch": {Count: 10, P50MS: 2, P99MS: 3, MaxMS: 4}}},
		{Throughput: 950, Latency: map[string]Latency{"switch": {Count: 10, P50MS: 3, P99MS: 5, MaxMS: 6}}},
	}}
	r.summarize()
	l := r.Latency["switch"]
	if r.Throughput != 950 || l.P50MS != 2 || l.P99MS != 5 || l.MaxMS != 6 || l.Count != 30 {
		t.Errorf("got throughput %v latency %+v", r.Throughput, l)
	}
}

func TestFailedOnAnyErrorOrMissedVersion(t *testing.T) {
	cases := []struct {
		r    Result
		want int
	}{
		{Result{Name: "ok", Errors: map[string]int64{"timeout": 0}}, 0},
		{Result{Name: "err", Errors: map[string]int64{"http_500 INTERNAL_ERROR": 1}}, 1},
		{Result{Name: "missed", Missed: 3}, 1},
		{Result{Name: "both", Errors: map[string]int64{"version_gap": 2, "ws_closed": 1}, Missed: 2}, 3},
		{Result{Name: "kept up", Params: Params{Rate: 1000}, Throughput: 990}, 0},
		{Result{Name: "behind", Params: Params{Rate: 10000}, Throughput: 3446}, 1},
		{Result{Name: "closed loop", Params: Params{Rate: 0}, Throughput: 3446}, 0},
	}
	for _, c := range cases {
		if got := c.r.failed(); len(got) != c.want {
			t.Errorf("%s: failed() = %v, want %d entries", c.r.Name, got, c.want)
		}
	}
}

func TestCompareRatios(t *testing.T) {
	base := &Report{Date: "then", Results: []*Result{{Name: "switch a", Throughput: 1000,
		Latency: map[string]Latency{"switch": {P50MS: 1, P90MS: 2, P99MS: 4, P999MS: 8, MaxMS: 10}}}}}
	cur := &Report{Results: []*Result{
		{Name: "switch a", Throughput: 500, Latency: map[string]Latency{"switch": {P50MS: 2, P90MS: 2, P99MS: 2, P999MS: 8, MaxMS: 30}}},
		{Name: "new one", Throughput: 1, Latency: map[string]Latency{"switch": {P50MS: 1}}},
	}}
	var buf bytes.Buffer
	writeCompare(&buf, cur, base)
	out := buf.String()
	for _, want := range []string{"| switch a | switch | ×0.50 | ×2.00 | ×1.00 | ×0.50 | ×1.00 | ×3.00 |", "| new one | – | not in baseline"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
}

func TestTableRatioToFloor(t *testing.T) {
	rep := &Report{Results: []*Result{
		{Name: "floor:evalsha", Latency: map[string]Latency{"switch": {P50MS: 0.5, P99MS: 2}}},
		{Name: "switch", Floor: "floor:evalsha", Params: Params{Rate: 1000}, Throughput: 1000,
			Latency: map[string]Latency{"switch": {P50MS: 1, P99MS: 3}}},
	}}
	var buf bytes.Buffer
	writeTable(&buf, rep)
	if !strings.Contains(buf.String(), "| ×2.00 | ×1.50 |") {
		t.Errorf("table lacks the floor ratios:\n%s", buf.String())
	}
}

func TestReplaceSection(t *testing.T) {
	body := "## Load tool\n\nnew\n"
	cases := []struct{ name, doc, want string }{
		{"empty file", "", "## Load tool\n\nnew\n"},
		{"no section", "# Results\n\n## Go benchmarks\n\nx\n", "# Results\n\n## Go benchmarks\n\nx\n\n## Load tool\n\nnew\n"},
		{"section last", "# R\n\n## Load tool\n\nold\nold\n", "# R\n\n## Load tool\n\nnew\n"},
		{"section in the middle", "# R\n\n## Load tool\n\nold\n\n## Go benchmarks\n\nkeep\n", "# R\n\n## Load tool\n\nnew\n\n## Go benchmarks\n\nkeep\n"},
		{"section first", "## Load tool\nold\n## Other\nkeep\n", "## Load tool\n\nnew\n\n## Other\nkeep\n"},
		{"subheadings stay inside", "## Load tool\nold\n### sub\nold\n## Next\nk\n", "## Load tool\n\nnew\n\n## Next\nk\n"},
	}
	for _, c := range cases {
		if got := replaceSection(c.doc, body); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestWriteDrift(t *testing.T) {
	rep := func(p50, p99 float64, rss int64) Rep {
		return Rep{RSSKB: rss, Latency: map[string]Latency{"switch": {P50MS: p50, P99MS: p99}}}
	}
	r := &Result{Reps: []Rep{rep(1, 4, 100), rep(1, 4, 100), rep(1, 4, 100), rep(2, 4, 150), rep(2, 4, 150), rep(2, 4, 150)}}
	var b strings.Builder
	writeDrift(&b, r)
	if want := "switch p50 ×2.00, p99 ×1.00, RSS ×1.50"; !strings.Contains(b.String(), want) {
		t.Errorf("drift %q lacks %q", b.String(), want)
	}
	b.Reset()
	writeDrift(&b, &Result{Reps: r.Reps[:2]})
	if b.Len() != 0 {
		t.Errorf("two windows are too few for a trend, got %q", b.String())
	}
}

// TestWriteResults: this run and an earlier one are written alike, but only
// the earlier one gets a soak's drift and the failures its results show.
func TestWriteResults(t *testing.T) {
	dir := t.TempDir()
	soak := func(name string, errs int64) *Result {
		r := &Result{Name: name, Scenario: "soak", Target: "server", Errors: map[string]int64{"http_503": errs},
			Latency: map[string]Latency{"switch": {P50MS: 1, P99MS: 2}}}
		for i := range 6 {
			r.Reps = append(r.Reps, Rep{StartS: float64(i), RSSKB: 100, Latency: r.Latency})
		}
		return r
	}
	old := &Report{Date: "then", Machine: "m", Command: "old", Results: []*Result{soak("old-soak", 2)}, Failures: []string{"saved failure"}}
	oldPath := filepath.Join(dir, "old.json")
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(oldPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cur := &Report{Date: "now", Machine: "m", Command: "new", Results: []*Result{soak("new-soak", 3)}, Failures: []string{"this failure"}}
	out := filepath.Join(dir, "RESULTS.md")
	if err := writeResults(out, cur, []string{filepath.Join(dir, "*.json")}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	this, that, ok := strings.Cut(string(got), "### From an earlier run: "+oldPath)
	if !ok {
		t.Fatalf("no earlier run in:\n%s", got)
	}
	for _, c := range []struct {
		part, text string
		want       bool
	}{
		{this, "new-soak", true},
		{this, "Failures in this run:\n\n- this failure\n", true},
		{this, "new-soak: 3 × http_503", false}, // this run's failures are as recorded
		{this, "Drift", false},
		{that, "old-soak", true},
		{that, "Failures in that run:\n\n- saved failure\n- old-soak: 2 × http_503\n", true},
		{that, "Drift, last third / first third", true},
	} {
		if strings.Contains(c.part, c.text) != c.want {
			t.Errorf("contains %q: %v, want %v, in:\n%s", c.text, !c.want, c.want, c.part)
		}
	}
}
