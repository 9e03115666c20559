// Package deploy holds deployment examples; its test keeps them true.
package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCompose: compose.yaml parses, runs two instances on one Redis and one
// PostgreSQL, and sets only variables the README documents; with a docker
// client that has compose, `docker compose config` accepts it too.
func TestCompose(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			DependsOn   map[string]any    `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile("(?m)^\\| `([A-Z_]+)`").FindAllStringSubmatch(string(readme), -1)
	var names []string
	for _, m := range documented {
		names = append(names, m[1])
	}
	instances := 0
	for name, s := range f.Services {
		if s.Build == "" {
			continue
		}
		instances++
		for _, need := range []string{"REDIS_URL", "DATABASE_URL"} {
			if s.Environment[need] == "" {
				t.Errorf("%s has no %s", name, need)
			}
		}
		if s.Environment["REDIS_URL"] != "redis://redis:6379" {
			t.Errorf("%s: REDIS_URL %q, not the shared redis service", name, s.Environment["REDIS_URL"])
		}
		for v := range s.Environment {
			if !slices.Contains(names, v) {
				t.Errorf("%s sets %s, which README.md does not document", name, v)
			}
		}
		for _, dep := range []string{"redis", "postgres"} {
			if _, ok := s.DependsOn[dep]; !ok {
				t.Errorf("%s does not wait for %s", name, dep)
			}
		}
	}
	if instances != 2 {
		t.Errorf("%d instances, want 2", instances)
	}
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		t.Logf("docker compose is not installed (%s): checked the YAML only", strings.TrimSpace(string(out)))
		return
	}
	if out, err := exec.Command("docker", "compose", "-f", "compose.yaml", "config", "-q").CombinedOutput(); err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}
