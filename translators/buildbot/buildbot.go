// Package buildbot is the translator plugin that normalizes raw Buildbot
// pulse messages (exchange/build/) the way Mozilla's pulsetranslator did:
// one normalized build or unit-test message per job, or per locale for l10n
// and release repacks. Its data tables and extra CC routes live in
// rules/buildbot.yaml; see README.md in this folder for the message formats
// and where it deliberately differs from the original.
package buildbot

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// Name is the name pipelines use for this translator.
const Name = "buildbot"

// Schemas of the outputs, under schemas/.
const (
	BuildSchema = "buildbot/build.json"
	TestSchema  = "buildbot/test.json"
)

func init() {
	translator.MustRegister(translator.Spec{
		Name:    Name,
		Summary: "raw Buildbot pulse messages to normalized build and unit-test messages",
		New:     New,
		// Its schemas are schemas/buildbot/*.json, its rule files
		// rules/buildbot.yaml and rules/buildbot-wait.yaml.
		Schemas: translator.Subset(schemas.Files, "buildbot"),
		Rules:   translator.Subset(rules.Builtin, "buildbot.yaml", "buildbot-wait.yaml"),
	})
}

// Translator translates raw Buildbot messages. It is safe for concurrent use.
type Translator struct {
	tables *compiledTables
	// maxOutputs is the most outputs the framework takes from one input:
	// a repack listing more locales is refused before its outputs are
	// built.
	maxOutputs int

	// The unit-test routing-key pattern depends on the tree of the
	// message; it is compiled once per tree and kept, up to
	// maxCachedPatterns. (Build keys are matched by matchBuildKey.)
	patterns     sync.Map // string -> *regexp.Regexp
	patternCount int
	patternMu    sync.Mutex
}

// defaultMaxOutputs is the most locales a repack may list when the
// framework sets no limit (a translator made by hand in a test).
const defaultMaxOutputs = 1000

// maxCachedPatterns bounds the pattern cache against a stream of made-up
// tree names.
const maxCachedPatterns = 4096

// New builds a Translator from the tables of rules/buildbot.yaml.
func New(p translator.Params) (translator.Translator, error) {
	tables, err := loadTables(p.Tables)
	if err != nil {
		return nil, err
	}
	maxOutputs := p.MaxOutputs
	if maxOutputs <= 0 {
		maxOutputs = defaultMaxOutputs
	}
	return &Translator{tables: tables, maxOutputs: maxOutputs}, nil
}

// Translate implements translator.Translator.
func (t *Translator) Translate(msg translator.Message) ([]translator.Output, error) {
	if kind := topLevelKind(msg.Body); kind != "an object" {
		return nil, translator.Refuse(translator.ClassMalformed, "the body is %s; a Buildbot pulse message is an object with payload and _meta", kind)
	}
	raw, err := parseRawMessage(msg)
	defer raw.release()
	if be, ok := translator.AsBodyError(err); ok {
		return nil, translator.Refuse(translator.ClassMalformed, "%v", be)
	}
	if err != nil {
		return nil, translator.Refuse(translator.ClassMalformed, "the body is not a Buildbot pulse message: %v", err)
	}
	if raw.Meta == nil {
		return nil, translator.Refuse(translator.ClassMalformed, "the body has no _meta object; a mozillapulse message carries _meta with its exchange and routing key")
	}
	key := raw.Meta.RoutingKey
	if key == "" {
		key = msg.RoutingKey
	}
	if key == "" {
		return nil, translator.Refuse(translator.ClassMalformed, "the message has no routing key (neither _meta.routing_key nor the delivery's)")
	}
	if raw.Payload.Build.Properties == nil {
		return nil, translator.Refuse(translator.ClassMalformed, "%s has no payload.build.properties; is it a Buildbot message?", key)
	}
	if err := checkTextProperties(key, raw.Payload.Build.Properties); err != nil {
		return nil, err
	}
	j := t.read(key, &raw, msg.Received)
	tree := text(j.payload["tree"])
	if tree == "" {
		return nil, translator.Refuse("no_branch", "%s has no 'branch' property, so its tree is unknown", key)
	}
	if err := setBuilddate(j.payload); err != nil {
		return nil, translator.Refuse("bad_buildid", "%s: %v", key, err)
	}

	if mayBeUnitTest(key) {
		if m := t.pattern(unitTestPattern, tree, "").FindStringSubmatch(key); m != nil {
			return t.unitTest(j, m, msg)
		}
	}
	if word := t.tables.internalBuilder(key); word != "" {
		return nil, translator.DropClass("internal_builder", "internal builder (%q in %s)", word, key)
	}
	return t.build(j)
}

// Routing-key patterns of the original. %[1]s is the tree, %[2]s the
// platform. buildPattern is matched by matchBuildKey, which is held to it
// by its tests.
const (
	unitTestPattern = `^build\.((%[1]s)[-|_](.*?)(-debug|-o-debug|-pgo|_pgo|_test)?[-|_](test|unittest|pgo)-(.*?))\.(\d+)\.(log_uploaded|finished)`
	buildPattern    = `^build\.((release-|jetpack-|b2g_)?(%[1]s)[-|_](xulrunner[-|_])?(%[2]s)([-|_]?)(.*?))\.(\d+)\.(log_uploaded|finished)`
)

// mayBeUnitTest is a necessary condition of unitTestPattern, cheap enough
// to spare a build's routing key the pattern: (test|unittest|pgo) is
// followed by a dash.
func mayBeUnitTest(key string) bool {
	return strings.Contains(key, "test-") || strings.Contains(key, "pgo-")
}

// pattern returns the compiled routing-key pattern for a tree and platform.
func (t *Translator) pattern(layout, tree, platform string) *regexp.Regexp {
	id := layout + "\x00" + tree + "\x00" + platform
	if re, ok := t.patterns.Load(id); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(fmt.Sprintf(layout, regexp.QuoteMeta(tree), regexp.QuoteMeta(platform)))
	t.patternMu.Lock()
	defer t.patternMu.Unlock()
	if t.patternCount < maxCachedPatterns {
		t.patternCount++
		t.patterns.Store(id, re)
	}
	return re
}

var _ translator.Translator = (*Translator)(nil)
