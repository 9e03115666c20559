// Package deploy holds deployment examples; its test keeps them true.
package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCompose: each compose file parses, runs two instances on one Redis
// (or one Redis Cluster) and one PostgreSQL, and sets only variables the
// README documents; with a docker client that has compose, `docker
// compose config` accepts it too.
func TestCompose(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)`").FindAllStringSubmatch(string(readme), -1) {
		documented = append(documented, m[1])
	}
	_, composeErr := exec.Command("docker", "compose", "version").CombinedOutput()
	for _, tc := range []struct {
		file     string
		redisVar string // the variable that points an instance at Redis
		redis    string // its value: the file's own Redis service(s)
		waitsFor []string
	}{
		{"compose.yaml", "REDIS_URL", "redis://redis:6379", []string{"redis", "postgres"}},
		{"compose.cluster.yaml", "REDIS_CLUSTER_ADDRS", "redis-1:6379,redis-2:6379,redis-3:6379", []string{"redis-init", "postgres"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			if !slices.Contains(documented, tc.redisVar) {
				// cluster-core documents REDIS_CLUSTER_ADDRS with the code that reads it
				t.Skipf("README.md does not document %s yet: %s not checked", tc.redisVar, tc.file)
			}
			b, err := os.ReadFile(tc.file)
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
			instances := 0
			for name, s := range f.Services {
				if s.Build == "" {
					continue
				}
				instances++
				if s.Environment["DATABASE_URL"] == "" {
					t.Errorf("%s has no DATABASE_URL", name)
				}
				if s.Environment[tc.redisVar] != tc.redis {
					t.Errorf("%s: %s %q, want %q", name, tc.redisVar, s.Environment[tc.redisVar], tc.redis)
				}
				for v := range s.Environment {
					if !slices.Contains(documented, v) {
						t.Errorf("%s sets %s, which README.md does not document", name, v)
					}
				}
				for _, dep := range tc.waitsFor {
					if _, ok := s.DependsOn[dep]; !ok {
						t.Errorf("%s does not wait for %s", name, dep)
					}
				}
			}
			if instances != 2 {
				t.Errorf("%d instances, want 2", instances)
			}
			if composeErr != nil {
				t.Logf("docker compose is not installed: checked the YAML only")
				return
			}
			if out, err := exec.Command("docker", "compose", "-f", tc.file, "config", "-q").CombinedOutput(); err != nil {
				t.Fatalf("docker compose config: %v\n%s", err, out)
			}
		})
	}
}
