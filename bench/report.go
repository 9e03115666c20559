package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	json "github.com/goccy/go-json"
)

// Report is one run of the tool: what `-json` writes and `-compare` reads.
type Report struct {
	Machine  string    `json:"machine"`
	Date     string    `json:"date"`
	Go       string    `json:"go"`
	Command  string    `json:"command"`
	Results  []*Result `json:"results"`
	Memory   *Memory   `json:"memory,omitempty"`
	Failures []string  `json:"failures,omitempty"`
}

// Result is one scenario against one target: the medians over its
// repetitions, and each repetition.
type Result struct {
	Name       string             `json:"name"` // unique within a report; -compare matches on it
	Scenario   string             `json:"scenario"`
	Target     string             `json:"target"`
	Floor      string             `json:"floor,omitempty"` // the Name of the result this one is compared to
	Params     Params             `json:"params"`
	Throughput float64            `json:"throughput_per_s"` // median over repetitions
	Latency    map[string]Latency `json:"latency"`          // op -> median over repetitions
	Errors     map[string]int64   `json:"errors"`           // all repetitions and warm-up
	Missed     int64              `json:"missed_versions"`
	Reps       []Rep              `json:"reps"`
}

// Params are the knobs a result was measured with.
type Params struct {
	Sessions     int     `json:"sessions"`
	Participants int     `json:"participants"`
	Clients      int     `json:"clients_per_session,omitempty"`
	Concurrency  int     `json:"concurrency"`
	Rate         float64 `json:"rate_per_s"` // offered; 0 = closed loop
	WarmupS      float64 `json:"warmup_s"`
	DurationS    float64 `json:"duration_s"` // per repetition
	Reps         int     `json:"reps"`
}

// Rep is one repetition (or, in a soak, one window).
type Rep struct {
	StartS     float64            `json:"start_s"` // since the first measured repetition
	Throughput float64            `json:"throughput_per_s"`
	Latency    map[string]Latency `json:"latency"`
	RSSKB      int64              `json:"rss_kb,omitempty"`
}

// Memory is the RSS of one server instance under a given load.
type Memory struct {
	Sessions        int     `json:"sessions"`
	Clients         int     `json:"clients"`
	ClientsWanted   int     `json:"clients_wanted"`
	IdleKB          int64   `json:"idle_rss_kb"`
	SessionsKB      int64   `json:"with_sessions_rss_kb"`
	ClientsKB       int64   `json:"with_clients_rss_kb"`
	PerSessionB     float64 `json:"per_session_bytes"`
	PerClientB      float64 `json:"per_client_bytes"`
	RedisPerSession float64 `json:"redis_per_session_bytes,omitempty"`
	Note            string  `json:"note,omitempty"`
}

// median returns the median of xs (the mean of the middle two when even).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianLatency takes each field's median over the repetitions
// independently: the typical repetition, not one lucky or unlucky run.
func medianLatency(reps []Latency) Latency {
	pick := func(f func(Latency) float64) float64 {
		xs := make([]float64, len(reps))
		for i, r := range reps {
			xs[i] = f(r)
		}
		return median(xs)
	}
	var count uint64
	for _, r := range reps {
		count += r.Count
	}
	return Latency{
		Count:  count,
		MeanMS: pick(func(l Latency) float64 { return l.MeanMS }),
		P50MS:  pick(func(l Latency) float64 { return l.P50MS }),
		P90MS:  pick(func(l Latency) float64 { return l.P90MS }),
		P99MS:  pick(func(l Latency) float64 { return l.P99MS }),
		P999MS: pick(func(l Latency) float64 { return l.P999MS }),
		MaxMS:  pick(func(l Latency) float64 { return l.MaxMS }),
	}
}

// summarize fills the medians from the repetitions.
func (r *Result) summarize() {
	tp := make([]float64, len(r.Reps))
	byOp := map[string][]Latency{}
	for i, rep := range r.Reps {
		tp[i] = rep.Throughput
		for op, l := range rep.Latency {
			byOp[op] = append(byOp[op], l)
		}
	}
	r.Throughput = math.Round(median(tp)*10) / 10
	r.Latency = map[string]Latency{}
	for op, ls := range byOp {
		r.Latency[op] = medianLatency(ls)
	}
}

// failed lists why a result must fail the run: any error at all, or any
// version a client never saw.
func (r *Result) failed() []string {
	var out []string
	for _, k := range sortedKeys(r.Errors) {
		if r.Errors[k] > 0 {
			out = append(out, fmt.Sprintf("%s: %d × %s", r.Name, r.Errors[k], k))
		}
	}
	if r.Missed > 0 {
		out = append(out, fmt.Sprintf("%s: %d versions missed by clients", r.Name, r.Missed))
	}
	// An open-loop run that did not reach its offered rate measured a
	// queue, not the rate it names: a failure, not a footnote.
	if r.Params.Rate > 0 && r.Throughput < behindRatio*r.Params.Rate {
		out = append(out, fmt.Sprintf("%s: did not keep up: %.0f of %.0f offered/s done", r.Name, r.Throughput, r.Params.Rate))
	}
	return out
}

// behindRatio is the share of the offered rate a run must complete.
const behindRatio = 0.95

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// opOrder is the order ops appear in tables.
var opOrder = []string{"switch", "delivery", "get", "time"}

func orderedOps(m map[string]Latency) []string {
	var out []string
	for _, op := range opOrder {
		if _, ok := m[op]; ok {
			out = append(out, op)
		}
	}
	for _, op := range sortedKeys(m) {
		if !contains(opOrder, op) {
			out = append(out, op)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (rep *Report) find(name string) *Result {
	for _, r := range rep.Results {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// ratio formats a/b as "×1.23", or "–" when b is zero.
func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "–"
	}
	return fmt.Sprintf("×%.2f", a/b)
}

func f3(x float64) string { return fmt.Sprintf("%.3f", x) }

// writeTable prints the results as a Markdown table, each row with its
// ratio to its floor measured in the same run.
func writeTable(w io.Writer, rep *Report) {
	fmt.Fprintln(w, "| result | op | offered/s | done/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p50 vs floor | p99 vs floor | errors | missed |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
	for _, r := range rep.Results {
		floor := rep.find(r.Floor)
		for _, op := range orderedOps(r.Latency) {
			l := r.Latency[op]
			p50r, p99r := "–", "–"
			// Only switches and deliveries have a floor of their own kind.
			if floor != nil && (op == "switch" || op == "delivery") {
				if fl, ok := floor.Latency[op]; ok {
					p50r, p99r = ratio(l.P50MS, fl.P50MS), ratio(l.P99MS, fl.P99MS)
				}
			}
			offered := "closed"
			if r.Params.Rate > 0 {
				offered = fmt.Sprintf("%.0f", r.Params.Rate)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
				r.Name, op, offered, r.Throughput, f3(l.P50MS), f3(l.P90MS), f3(l.P99MS), f3(l.P999MS), f3(l.MaxMS),
				p50r, p99r, errText(r.Errors), r.Missed)
		}
	}
}

func errText(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// writeWindows prints a soak's latency over time.
func writeWindows(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n%s, latency over time:\n\n", r.Name)
	fmt.Fprintln(w, "| t s | done/s | switch p50 ms | switch p99 ms | switch max ms | delivery p50 ms | delivery p99 ms | RSS MB |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, rep := range r.Reps {
		sw, dl := rep.Latency["switch"], rep.Latency["delivery"]
		rss := "–"
		if rep.RSSKB > 0 {
			rss = fmt.Sprintf("%.1f", float64(rep.RSSKB)/1024)
		}
		fmt.Fprintf(w, "| %.0f | %.0f | %s | %s | %s | %s | %s | %s |\n", rep.StartS, rep.Throughput,
			f3(sw.P50MS), f3(sw.P99MS), f3(sw.MaxMS), f3(dl.P50MS), f3(dl.P99MS), rss)
	}
}

func writeMemory(w io.Writer, m *Memory) {
	fmt.Fprintf(w, "\nMemory of one server instance (VmRSS):\n\n")
	fmt.Fprintln(w, "| state | RSS MB |")
	fmt.Fprintln(w, "|---|---:|")
	fmt.Fprintf(w, "| idle | %.1f |\n", float64(m.IdleKB)/1024)
	fmt.Fprintf(w, "| %d sessions | %.1f |\n", m.Sessions, float64(m.SessionsKB)/1024)
	fmt.Fprintf(w, "| %d sessions + %d WebSocket clients | %.1f |\n", m.Sessions, m.Clients, float64(m.ClientsKB)/1024)
	fmt.Fprintf(w, "\nPer session: %.0f B of server RSS", m.PerSessionB)
	if m.RedisPerSession > 0 {
		fmt.Fprintf(w, " (plus about %.0f B in Redis, from INFO used_memory)", m.RedisPerSession)
	}
	fmt.Fprintf(w, "; per WebSocket client: %.0f B.\n", m.PerClientB)
	if m.Note != "" {
		fmt.Fprintf(w, "%s\n", m.Note)
	}
}

// writeCompare prints each figure of cur as a ratio to the same result in
// base: above 1 is slower (latency) or faster (throughput).
func writeCompare(w io.Writer, cur, base *Report) {
	fmt.Fprintf(w, "\nCompared with baseline of %s (current / baseline):\n\n", base.Date)
	fmt.Fprintln(w, "| result | op | done/s | p50 | p90 | p99 | p99.9 | max |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range cur.Results {
		b := base.find(r.Name)
		if b == nil {
			fmt.Fprintf(w, "| %s | – | not in baseline | | | | | |\n", r.Name)
			continue
		}
		for _, op := range orderedOps(r.Latency) {
			l, ok := b.Latency[op]
			if !ok {
				continue
			}
			c := r.Latency[op]
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Name, op, ratio(r.Throughput, b.Throughput),
				ratio(c.P50MS, l.P50MS), ratio(c.P90MS, l.P90MS), ratio(c.P99MS, l.P99MS), ratio(c.P999MS, l.P999MS), ratio(c.MaxMS, l.MaxMS))
		}
	}
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

const sectionTitle = "## Load tool"

// replaceSection returns doc with the "## Load tool" section (up to the
// next "## " heading) replaced by body, or body appended when there is no
// such section. Other sections are left byte for byte.
func replaceSection(doc, body string) string {
	body = strings.TrimRight(body, "\n") + "\n"
	start := -1
	if strings.HasPrefix(doc, sectionTitle+"\n") {
		start = 0
	} else if i := strings.Index(doc, "\n"+sectionTitle+"\n"); i >= 0 {
		start = i + 1
	}
	if start < 0 {
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" {
			doc += "\n"
		}
		return doc + body
	}
	rest := doc[start+len(sectionTitle)+1:]
	end := len(doc)
	if j := strings.Index(rest, "\n## "); j >= 0 {
		end = start + len(sectionTitle) + 1 + j + 1
		return doc[:start] + body + "\n" + doc[end:]
	}
	return doc[:start] + body
}
