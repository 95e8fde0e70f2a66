package translator_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func TestReadMessageRefusesWhatIsNotUTF8JSON(t *testing.T) {
	deep := make([]byte, 0, 2*(translator.MaxDepth+1))
	for range translator.MaxDepth + 1 {
		deep = append(deep, '[')
	}
	for range translator.MaxDepth + 1 {
		deep = append(deep, ']')
	}
	for _, tc := range []struct {
		name    string
		body    string
		problem translator.BodyProblem
		offset  int
	}{
		{"truncated", `{"payload": {"build"`, translator.NotJSON, 20},
		{"latin-1", "{\"a\": \"caf\xe9\"}", translator.NotUTF8, 10},
		{"raw newline", "{\"a\": \"x\ny\"}", translator.ControlCharacter, 8},
		{"too deep", string(deep), translator.TooDeep, translator.MaxDepth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := translator.ReadMessage("exchange/build/", "rk", nil, []byte(tc.body), time.Time{})
			be, ok := translator.AsBodyError(err)
			if !ok {
				t.Fatalf("err = %v, want a *BodyError", err)
			}
			if be.Problem != tc.problem || be.Offset != tc.offset {
				t.Fatalf("got problem %d at %d (%v), want %d at %d", be.Problem, be.Offset, be, tc.problem, tc.offset)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	body := []byte(`{"payload": {"build": {"results": 0, "results": 2, "properties": [["a", 1]]}, "x": [1]}, "_meta": {"sent": "now"}}`)
	msg, err := translator.ReadMessage("exchange/build/", "build.x.finished", map[string]any{"h": "v"}, body, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  []string
		raw   string
		found bool
	}{
		{[]string{"payload", "build", "results"}, `0`, true}, // the first of a repeated name
		{[]string{"payload", "build", "properties"}, `[["a", 1]]`, true},
		{[]string{"_meta", "sent"}, `"now"`, true},
		{[]string{"payload", "x", "0"}, ``, false}, // through an array: not found
		{[]string{"payload", "missing"}, ``, false},
		{[]string{"payload", "build", "properties", "a"}, ``, false}, // deeper than LookupDepth
	} {
		raw, found, err := msg.Lookup(tc.path...)
		if err != nil || found != tc.found || string(raw) != tc.raw {
			t.Errorf("Lookup(%q) = %q, %v, %v; want %q, %v", tc.path, raw, found, err, tc.raw, tc.found)
		}
	}

	// A Message made by hand is checked on each call.
	byHand := translator.Message{Body: []byte(`{"a": {"b": true}}`)}
	if raw, found, err := byHand.Lookup("a", "b"); err != nil || !found || string(raw) != "true" {
		t.Errorf("hand-made Lookup = %q, %v, %v", raw, found, err)
	}
	bad := translator.Message{Body: []byte(`{"a": `)}
	if _, _, err := bad.Lookup("a"); err == nil {
		t.Error("Lookup of a hand-made message with a broken body gave no error")
	}
}

func TestSubsetShowsOnlyItsPaths(t *testing.T) {
	files := fstest.MapFS{
		"buildbot/build.json":      {Data: []byte(`{}`)},
		"buildbot/sub/deep.json":   {Data: []byte(`{}`)},
		"hg/push.json":             {Data: []byte(`{}`)},
		"buildbot.yaml":            {Data: []byte(`a: 1`)},
		"buildbot-wait.yaml":       {Data: []byte(`a: 1`)},
		"other/buildbot/trap.json": {Data: []byte(`{}`)},
	}
	sub := translator.Subset(files, "buildbot", "buildbot.yaml")
	var got []string
	if err := fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, path)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"buildbot/build.json", "buildbot/sub/deep.json", "buildbot.yaml"} // in walk order
	if len(got) != len(want) {
		t.Fatalf("walk = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("walk = %q, want %q", got, want)
		}
	}
	for _, hidden := range []string{"hg/push.json", "buildbot-wait.yaml", "other/buildbot/trap.json", "../buildbot.yaml"} {
		if _, err := fs.ReadFile(sub, hidden); err == nil {
			t.Errorf("Subset shows %s", hidden)
		}
	}
}

func TestRegistry(t *testing.T) {
	var reg translator.Registry
	noop := func(translator.Params) (translator.Translator, error) {
		return translator.Func(func(translator.Message) ([]translator.Output, error) { return nil, nil }), nil
	}
	if err := reg.Register(translator.Spec{Name: "b", New: noop}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(translator.Spec{Name: "a", New: noop}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(translator.Spec{Name: "a", New: noop}); err == nil {
		t.Error("a second plugin named a was registered")
	}
	if err := reg.Register(translator.Spec{Name: "c"}); err == nil {
		t.Error("a plugin without a factory was registered")
	}
	specs := reg.Specs()
	if len(specs) != 2 || specs[0].Name != "a" || specs[1].Name != "b" {
		t.Errorf("Specs() = %v", specs)
	}
	if _, ok := reg.Lookup("c"); ok {
		t.Error("Lookup found an unregistered plugin")
	}
}

func TestErrorsSurviveWrapping(t *testing.T) {
	err := fmt.Errorf("reading build: %w", translator.Refuse("no_build_url", "the message names no build URL"))
	var refusal *translator.Refusal
	if !errors.As(err, &refusal) || refusal.Class != "no_build_url" {
		t.Errorf("wrapped refusal not found: %v", err)
	}
	err = fmt.Errorf("x: %w", translator.DropClass("ignored_platform", "platform %s is ignored", "b2g"))
	var dropped *translator.Dropped
	if !errors.As(err, &dropped) || dropped.Class != "ignored_platform" || dropped.Reason != "platform b2g is ignored" {
		t.Errorf("wrapped drop not found: %v", err)
	}
}

// TestRefusalKeepsItsCause: a refusal made with %w keeps the error behind
// it for errors.Is and errors.As; one made with %v does not claim it.
func TestRefusalKeepsItsCause(t *testing.T) {
	cause := &json.SyntaxError{Offset: 3}
	wrapped := translator.Refuse("bad_x", "reading x: %w", cause)
	var se *json.SyntaxError
	if !errors.As(wrapped, &se) || se.Offset != 3 || !errors.Is(wrapped, cause) {
		t.Errorf("%v: the cause is lost", wrapped)
	}
	var r *translator.Refusal
	if !errors.As(wrapped, &r) || r.Class != "bad_x" || r.Reason != "reading x: "+cause.Error() {
		t.Errorf("refusal %+v", r)
	}
	if errors.Is(translator.Refuse("bad_x", "reading x: %v", cause), cause) {
		t.Error("a refusal made with the v verb claims its argument as its cause")
	}
}

// TestTypedLookups: LookupString, LookupNumber and LookupBool give the
// value of a member of their type; a missing or null member is not found;
// a member of another type is an error naming the path and what it holds.
func TestTypedLookups(t *testing.T) {
	msg, err := translator.ReadMessage("exchange/x/", "k", nil, []byte(`{"payload": {"build": {"name": "linux \"64\"", "results": 2, "big": 9007199254740993, "ok": true, "off": false, "none": null, "list": [1]}}}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s, found, err := msg.LookupString("payload", "build", "name"); s != `linux "64"` || !found || err != nil {
		t.Errorf("LookupString: %q %v %v", s, found, err)
	}
	if n, found, err := msg.LookupNumber("payload", "build", "big"); n.String() != "9007199254740993" || !found || err != nil {
		t.Errorf("LookupNumber: %q %v %v", n, found, err)
	}
	if n, _, _ := msg.LookupNumber("payload", "build", "results"); n.String() != "2" {
		t.Errorf("LookupNumber results: %q", n)
	}
	if b, found, err := msg.LookupBool("payload", "build", "ok"); !b || !found || err != nil {
		t.Errorf("LookupBool ok: %v %v %v", b, found, err)
	}
	if b, found, err := msg.LookupBool("payload", "build", "off"); b || !found || err != nil {
		t.Errorf("LookupBool off: %v %v %v", b, found, err)
	}
	for _, path := range [][]string{{"payload", "build", "none"}, {"payload", "build", "missing"}} {
		if _, found, err := msg.LookupString(path...); found || err != nil {
			t.Errorf("%v: found %v, %v; want not found", path, found, err)
		}
	}
	if _, _, err := msg.LookupString("payload", "build", "results"); err == nil || err.Error() != "payload.build.results is a number, not a string" {
		t.Errorf("a number as a string: %v", err)
	}
	if _, _, err := msg.LookupNumber("payload", "build", "list"); err == nil || err.Error() != "payload.build.list is an array, not a number" {
		t.Errorf("an array as a number: %v", err)
	}
	if _, _, err := msg.LookupBool("payload", "build", "name"); err == nil || err.Error() != "payload.build.name is a string, not a boolean" {
		t.Errorf("a string as a boolean: %v", err)
	}
}
