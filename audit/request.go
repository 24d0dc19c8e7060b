package audit

import (
	"crypto/sha256"
	"encoding/hex"

	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultUser is the userInfo.username of audit requests: who created an
// object is not recorded in it, so rules on the requesting user (exemptions
// by username) see this name, which no exemption lists unless on purpose.
const DefaultUser = "portcullis-audit"

// Request builds the AdmissionRequest that creating the object would
// produce: operation CREATE, no oldObject, dry-run, the given user. The UID
// is derived from the object's identity, so two passes over an unchanged
// object build the same request.
func Request(t Target, namespace, name string, uid types.UID, raw []byte, user string) *admissionv1.AdmissionRequest {
	gvk := metav1.GroupVersionKind{Group: t.GVR.Group, Version: t.GVR.Version, Kind: t.Kind}
	gvr := metav1.GroupVersionResource{Group: t.GVR.Group, Version: t.GVR.Version, Resource: t.GVR.Resource}
	sum := sha256.Sum256([]byte(t.String() + "/" + namespace + "/" + name + "/" + string(uid)))
	dryRun := true
	return &admissionv1.AdmissionRequest{
		UID:             types.UID("portcullis-audit-" + hex.EncodeToString(sum[:8])),
		Kind:            gvk,
		Resource:        gvr,
		RequestKind:     &gvk,
		RequestResource: &gvr,
		Name:            name,
		Namespace:       namespace,
		Operation:       admissionv1.Create,
		UserInfo:        authnv1.UserInfo{Username: user},
		Object:          runtime.RawExtension{Raw: raw},
		DryRun:          &dryRun,
		Options:         runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
	}
}
