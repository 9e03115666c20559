// Package metricslint checks a /metrics page the way `promtool check
// metrics` does, in-process: Prometheus's own text parser must accept it and
// promlint's naming rules must find nothing this service can act on. Tests
// use it so that `make test` needs no system package for the check.
package metricslint

import (
	"bytes"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Check parses text in the Prometheus text format (0.0.4, legacy names, as
// Prometheus scrapes it) and lints every family. It returns the parse error,
// or the findings Accepted does not excuse, each as "name: problem".
func Check(text []byte) ([]string, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, err
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		mfs = append(mfs, mf)
	}
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pr := range problems {
		if !Accepted(pr.Metric, pr.Text) {
			out = append(out, pr.Metric+": "+pr.Text)
		}
	}
	return out, nil
}

// Accepted reports whether a lint finding is one we cannot act on:
// VictoriaMetrics/metrics writes no HELP lines, the plan names durations in
// _ms, and the go_/process_ families are the library's, not ours.
func Accepted(metric, problem string) bool {
	switch {
	case problem == "no help text":
		return true
	case strings.HasPrefix(metric, "synckairos_") && problem == "metric names should not contain abbreviated units":
		return true
	case strings.HasPrefix(metric, "go_"), strings.HasPrefix(metric, "process_"):
		return true
	}
	return false
}
