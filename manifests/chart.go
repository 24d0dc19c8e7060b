package manifests

import (
	"fmt"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

// ChartDir is the Helm chart, relative to this directory.
const ChartDir = "charts/portcullis"

// RenderChart renders the chart in dir as `helm template --namespace
// namespace name dir` would, with values merged over the chart's own
// (values.schema.json is enforced), using Helm's Go library, and returns the
// objects as a multi-document YAML stream in Helm's install order.
func RenderChart(dir, name, namespace string, values map[string]any) ([]byte, error) {
	chrt, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	opts := common.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(chrt, values, opts, common.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("chart values: %w", err)
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart: %w", err)
	}
	for f := range files {
		if strings.HasSuffix(f, "NOTES.txt") {
			delete(files, f)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("sort chart output: %w", err)
	}
	if len(hooks) > 0 {
		return nil, fmt.Errorf("chart renders %d hooks; none expected", len(hooks))
	}
	var b strings.Builder
	for i, m := range manifests {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(strings.TrimSpace(m.Content))
		b.WriteString("\n")
	}
	return []byte(b.String()), nil
}
