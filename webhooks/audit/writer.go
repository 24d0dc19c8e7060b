package audit

import (
	"context"
	"fmt"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
)

// ReportWriter keeps one Report per namespace (a ClusterReport for
// cluster-scoped objects) equal to the latest findings: created when there
// are results, updated when they change, deleted when none are left.
type ReportWriter struct {
	Client ctrlclient.Client
}

// NewReportClient returns a client that knows the OpenReports types.
func NewReportClient(cfg *rest.Config) (ctrlclient.Client, error) {
	scheme := runtime.NewScheme()
	if err := orv1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("openreports scheme: %w", err)
	}
	c, err := ctrlclient.New(cfg, ctrlclient.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("report client: %w", err)
	}
	return c, nil
}

// Write is what a write did.
type Write string

// The outcomes of Sync.
const (
	WriteNone    Write = "unchanged"
	WriteCreated Write = "created"
	WriteUpdated Write = "updated"
	WriteDeleted Write = "deleted"
)

// Sync makes the namespace's report (namespace "": the ClusterReport) hold
// exactly findings' results.
func (w *ReportWriter) Sync(ctx context.Context, namespace string, findings []*Finding, at time.Time) (Write, error) {
	results := Results(findings, at)
	if namespace == "" {
		return w.syncCluster(ctx, results)
	}
	var cur orv1alpha1.Report
	err := w.Client.Get(ctx, ctrlclient.ObjectKey{Namespace: namespace, Name: ReportName}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		if len(results) == 0 {
			return WriteNone, nil
		}
		r := &orv1alpha1.Report{
			ObjectMeta: reportMeta(namespace),
			Source:     ReportSource,
			Summary:    Summary(results),
			Results:    results,
		}
		if err := w.Client.Create(ctx, r); err != nil {
			return WriteNone, fmt.Errorf("create report %s/%s: %w", namespace, ReportName, err)
		}
		return WriteCreated, nil
	case err != nil:
		return WriteNone, fmt.Errorf("get report %s/%s: %w", namespace, ReportName, err)
	}
	if len(results) == 0 {
		if err := w.Client.Delete(ctx, &cur, ctrlclient.Preconditions{ResourceVersion: &cur.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
			return WriteNone, fmt.Errorf("delete report %s/%s: %w", namespace, ReportName, err)
		}
		return WriteDeleted, nil
	}
	if sameResults(cur.Results, results) {
		return WriteNone, nil
	}
	keepTimestamps(results, cur.Results)
	cur.Source, cur.Results, cur.Summary = ReportSource, results, Summary(results)
	if err := w.Client.Update(ctx, &cur); err != nil {
		return WriteNone, fmt.Errorf("update report %s/%s: %w", namespace, ReportName, err)
	}
	return WriteUpdated, nil
}

func (w *ReportWriter) syncCluster(ctx context.Context, results []orv1alpha1.ReportResult) (Write, error) {
	var cur orv1alpha1.ClusterReport
	err := w.Client.Get(ctx, ctrlclient.ObjectKey{Name: ReportName}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		if len(results) == 0 {
			return WriteNone, nil
		}
		r := &orv1alpha1.ClusterReport{ObjectMeta: reportMeta(""), Source: ReportSource, Summary: Summary(results), Results: results}
		if err := w.Client.Create(ctx, r); err != nil {
			return WriteNone, fmt.Errorf("create cluster report %s: %w", ReportName, err)
		}
		return WriteCreated, nil
	case err != nil:
		return WriteNone, fmt.Errorf("get cluster report %s: %w", ReportName, err)
	}
	if len(results) == 0 {
		if err := w.Client.Delete(ctx, &cur, ctrlclient.Preconditions{ResourceVersion: &cur.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
			return WriteNone, fmt.Errorf("delete cluster report %s: %w", ReportName, err)
		}
		return WriteDeleted, nil
	}
	if sameResults(cur.Results, results) {
		return WriteNone, nil
	}
	keepTimestamps(results, cur.Results)
	cur.Source, cur.Results, cur.Summary = ReportSource, results, Summary(results)
	if err := w.Client.Update(ctx, &cur); err != nil {
		return WriteNone, fmt.Errorf("update cluster report %s: %w", ReportName, err)
	}
	return WriteUpdated, nil
}

// Namespaces lists the namespaces holding a Portcullis report (a full pass
// revisits them, so a namespace whose objects are all gone loses its report).
func (w *ReportWriter) Namespaces(ctx context.Context) ([]string, error) {
	var list orv1alpha1.ReportList
	if err := w.Client.List(ctx, &list, ctrlclient.MatchingLabels{ManagedByLabel: ManagedBy}); err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	var out []string
	for _, r := range list.Items {
		if r.Name == ReportName {
			out = append(out, r.Namespace)
		}
	}
	return out, nil
}

func reportMeta(namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      ReportName,
		Namespace: namespace,
		Labels:    map[string]string{ManagedByLabel: ManagedBy},
	}
}
