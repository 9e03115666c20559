package metricslint

import (
	"bytes"
	"slices"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		text     string
		parseErr bool
		problems []string
	}{
		{"counter and histogram", "# TYPE synckairos_x_total counter\nsynckairos_x_total{a=\"b\"} 3\n" +
			"# TYPE synckairos_d_ms histogram\nsynckairos_d_ms_bucket{le=\"1\"} 1\nsynckairos_d_ms_bucket{le=\"+Inf\"} 2\n" +
			"synckairos_d_ms_sum 3\nsynckairos_d_ms_count 2\n", false, nil},
		{"library families excused", "# TYPE go_x counter\ngo_x 1\n", false, nil},
		{"no value", "synckairos_x_total\n", true, nil},
		{"bad label syntax", "synckairos_x_total{a=b} 1\n", true, nil},
		{"not a number", "synckairos_x_total one\n", true, nil},
		{"two TYPE lines", "# TYPE a counter\n# TYPE a gauge\na 1\n", true, nil},
		{"quoted UTF-8 name", "{\"synckairos.x\"} 1\n", true, nil},
		{"counter without _total", "# TYPE synckairos_requests counter\nsynckairos_requests 1\n", false,
			[]string{`synckairos_requests: counter metrics should have "_total" suffix`}},
		{"gauge with _total", "# TYPE synckairos_open_total gauge\nsynckairos_open_total 1\n", false,
			[]string{`synckairos_open_total: non-counter metrics should not have "_total" suffix`}},
		{"camelCase", "synckairos_openConns 1\n", false,
			[]string{"synckairos_openConns: metric names should be written in 'snake_case' not 'camelCase'"}},
		{"non-base unit", "synckairos_wait_minutes 1\n", false,
			[]string{`synckairos_wait_minutes: use base unit "seconds" instead of "minutes"`}},
		{"abbreviated unit outside synckairos_", "other_wait_ms 1\n", false,
			[]string{"other_wait_ms: metric names should not contain abbreviated units"}},
		{"duplicate series", "synckairos_x 1\nsynckairos_x 2\n", false,
			[]string{"synckairos_x: metric not unique"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Check([]byte(tt.text))
			if (err != nil) != tt.parseErr {
				t.Fatalf("parse error = %v, want error %v", err, tt.parseErr)
			}
			if !slices.Equal(got, tt.problems) {
				t.Errorf("problems = %q, want %q", got, tt.problems)
			}
		})
	}
}

// TestCheckVictoriaMetrics: what the library writes for the kinds we use
// passes, process metrics included.
func TestCheckVictoriaMetrics(t *testing.T) {
	t.Parallel()
	s := metrics.NewSet()
	s.NewCounter(`synckairos_c_total{k="v"}`).Inc()
	s.NewGauge("synckairos_g", func() float64 { return 1 })
	s.NewHistogram("synckairos_h_seconds").Update(0.2)
	s.NewPrometheusHistogram("synckairos_p_ms").Update(3)
	var b bytes.Buffer
	s.WritePrometheus(&b)
	metrics.WriteProcessMetrics(&b)
	got, err := Check(b.Bytes())
	if err != nil || len(got) != 0 {
		t.Fatalf("Check = %q, %v\n%s", got, err, b.String())
	}
}
