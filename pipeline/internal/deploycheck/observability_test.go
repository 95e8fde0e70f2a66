package deploycheck

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
)

// metricName finds the metrics a query or rule names.
var metricName = regexp.MustCompile(`pulsetranslator_[a-z0-9_]+`)

// unknownMetrics lists the metrics expr names that the binary does not
// export.
func unknownMetrics(expr string) []string {
	exported := runner.MetricNames()
	var unknown []string
	for _, name := range metricName.FindAllString(expr, -1) {
		if !slices.Contains(exported, name) {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

// promtool finds Debian's promtool. With CI=true a missing one is
// installed, or the test fails; elsewhere the test is skipped.
func promtool(t *testing.T) string {
	return brokertest.DebianTool(t, "promtool", "prometheus", "--no-install-recommends")
}

// TestAlertRules checks the alert rules with promtool and runs their unit
// tests (prometheus/alerts_test.yaml), and that every rule names only
// metrics the binary exports and has a summary and a runbook.
func TestAlertRules(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err := os.ReadFile(deployPath("prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if u := unknownMetrics(r.Expr); len(u) > 0 {
				t.Errorf("%s names metrics the binary does not export: %v", r.Alert, u)
			}
			if r.Annotations["summary"] == "" || !strings.HasPrefix(r.Annotations["runbook"], "docs/operating.md#alerts") {
				t.Errorf("%s needs a summary and a runbook pointing at docs/operating.md", r.Alert)
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !strings.Contains(string(readme), "`"+a+"`") {
			t.Errorf("the runbook (docs/operating.md) has no line for %s", a)
		}
	}
	if len(alerts) < 5 {
		t.Errorf("%d alerts, want the backlog, dead queue, stalled publishing, readiness and failing checks", len(alerts))
	}
	tool := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = deployPath("prometheus")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestGrafanaDashboard checks the dashboard is valid JSON, that every
// panel queries Prometheus, and that every query names only metrics the
// binary exports, among them each one the metric table of docs/operating.md lists.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(deployPath("grafana", "pulsetranslator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				Type string `json:"type"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard has no title, uid or panels")
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Datasource.Type != "prometheus" || len(p.Targets) == 0 {
			t.Errorf("panel %q queries no Prometheus", p.Title)
		}
		for _, target := range p.Targets {
			if u := unknownMetrics(target.Expr); len(u) > 0 {
				t.Errorf("panel %q names metrics the binary does not export: %v", p.Title, u)
			}
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				used[strings.TrimSuffix(name, "_bucket")] = true
			}
		}
	}
	for _, name := range runner.MetricNames() {
		if strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			continue
		}
		if !used[strings.TrimSuffix(name, "_bucket")] {
			t.Errorf("no panel shows %s", name)
		}
	}
}
