package translator

import (
	"io/fs"
	"slices"
	"strings"
)

// Subset returns a view of fsys that holds only the given paths, each a
// file or a directory with everything under it, under their own names:
// how a plugin ships part of an embedded tree, for example
// Subset(files, "buildbot") for the schemas under buildbot/, or
// Subset(files, "buildbot.yaml", "buildbot-wait.yaml") for two rule files.
func Subset(fsys fs.FS, paths ...string) fs.FS {
	return subset{fsys: fsys, paths: slices.Clone(paths)}
}

type subset struct {
	fsys  fs.FS
	paths []string
}

// holds reports whether name is one of the paths, under one, or a
// directory on the way to one.
func (s subset) holds(name string) bool {
	if name == "." {
		return true
	}
	for _, p := range s.paths {
		if name == p || strings.HasPrefix(name, p+"/") || strings.HasPrefix(p, name+"/") {
			return true
		}
	}
	return false
}

// Open implements fs.FS.
func (s subset) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if !s.holds(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return s.fsys.Open(name)
}

// ReadDir implements fs.ReadDirFS: the entries the subset holds.
func (s subset) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) || !s.holds(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	entries, err := fs.ReadDir(s.fsys, name)
	if err != nil {
		return nil, err
	}
	kept := entries[:0:0]
	for _, e := range entries {
		full := e.Name()
		if name != "." {
			full = name + "/" + e.Name()
		}
		if s.holds(full) {
			kept = append(kept, e)
		}
	}
	return kept, nil
}
