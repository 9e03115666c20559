package persist

import (
	"io"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics are the worker's own metric set; main registers Set().
type Metrics struct {
	set                                           *metrics.Set
	written, duplicates, deadLetters, writeErrors *metrics.Counter
	superseded, lives                             *metrics.Counter
	batchSize, batchSeconds                       *metrics.PrometheusHistogram
}

func newMetrics(w *Worker) *Metrics {
	s := metrics.NewSet()
	m := &Metrics{
		set:         s,
		written:     s.NewCounter("synckairos_persist_events_written_total"),
		duplicates:  s.NewCounter("synckairos_persist_events_duplicate_total"),
		deadLetters: s.NewCounter("synckairos_persist_dead_letters_total"),
		writeErrors: s.NewCounter("synckairos_persist_write_errors_total"),
		// Events of an earlier life of their session (counted in written
		// too), and lives superseded by a re-created id (the metric keeps
		// its first name).
		superseded: s.NewCounter("synckairos_persist_events_superseded_total"),
		lives:      s.NewCounter("synckairos_persist_incarnations_superseded_total"),
		batchSize: s.NewPrometheusHistogramExt("synckairos_persist_batch_size",
			[]float64{1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000}),
		batchSeconds: s.NewPrometheusHistogramExt("synckairos_persist_batch_duration_seconds",
			[]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
	}
	s.NewGauge("synckairos_persist_consumer_lag_seconds", func() float64 { return w.Lag().Seconds() })
	return m
}

// Set returns the metric set, for metrics.RegisterSet.
func (m *Metrics) Set() *metrics.Set { return m.set }

// WritePrometheus writes the worker's metrics.
func (m *Metrics) WritePrometheus(out io.Writer) { m.set.WritePrometheus(out) }
