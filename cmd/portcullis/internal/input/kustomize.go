package input

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomize renders dir with the kustomize library kubectl embeds
// (sigs.k8s.io/kustomize/api/krusty, the engine of `kubectl apply -k`), with
// its default options: resources kept in the kustomization's order, no
// plugins, files only from under dir. The rendered objects are positioned
// in the rendered stream (document index), not in the files they came from:
// their Line is 0.
func (r *Reader) kustomize(dir string, in *Input) error {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		in.Problems = append(in.Problems, Problem{Position: Position{Source: dir, Item: -1}, Err: fmt.Errorf("kustomize: %w", err)})
		return nil
	}
	out, err := m.AsYaml()
	if err != nil {
		in.Problems = append(in.Problems, Problem{Position: Position{Source: dir, Item: -1}, Err: fmt.Errorf("kustomize: %w", err)})
		return nil
	}
	if left := r.limit() - r.read; int64(len(out)) > left {
		return fmt.Errorf("%s: %w: the input passes the limit of %d bytes in total (--max-input-bytes)", dir, ErrTooLarge, r.limit())
	}
	r.read += int64(len(out))
	objs, probs := Parse(dir, out)
	for i := range objs {
		objs[i].Line = 0
		objs[i].Text = nil // not what the user wrote
	}
	for i := range probs {
		probs[i].Line = 0
	}
	in.Objects = append(in.Objects, objs...)
	in.Problems = append(in.Problems, probs...)
	return nil
}
