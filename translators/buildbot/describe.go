package buildbot

import "github.com/pulsetranslator/pulsetranslator/pipeline/translator"

// Describe documents the three kinds of normalized messages: builds, unit
// tests and talos runs. It implements translator.Describer.
func (t *Translator) Describe() []translator.OutputDoc {
	word := func(name, summary string) translator.KeyField {
		return translator.KeyField{Name: name, Summary: summary, Required: true}
	}
	constant := func(value, summary string) translator.KeyField {
		return translator.KeyField{Name: "kind", Summary: summary, Constant: value, Required: true}
	}
	tree := word("tree", "The tree (branch) built, e.g. mozilla-central.")
	platform := word("platform", "The platform, e.g. linux64, win32, macosx64.")
	buildtype := word("buildtype", "opt, debug or pgo.")
	builder := word("builder", "The Buildbot builder's short name, from the raw routing key.")
	testKey := func(kind string) []translator.KeyField {
		return []translator.KeyField{
			constant(kind, "The kind of message: "+kind+"."),
			tree, platform,
			word("os", "The operating system the job ran on, e.g. ubuntu64_vm, win7, snowleopard."),
			buildtype,
			word("test", "The test suite, e.g. mochitest-1."),
			word("product", "The product tested, e.g. firefox; unknown when Buildbot did not say."),
			builder,
		}
	}
	return []translator.OutputDoc{
		{
			Name: "build", Title: "Build finished",
			Description: "One finished build, or one locale of a repack, once its log is uploaded.",
			Schema:      BuildSchema,
			RoutingKey: []translator.KeyField{
				constant("build", "The kind of message: build."),
				tree, platform, buildtype,
				{Name: "tags", Summary: "Build tags, e.g. nightly, l10n (followed by the locale), asan; none for a plain build.", MultipleWords: true},
				builder,
			},
		},
		{
			Name: "unittest", Title: "Unit test job finished",
			Description: "One unit test job, once its log is uploaded.",
			Schema:      TestSchema, RoutingKey: testKey("unittest"),
		},
		{
			Name: "talos", Title: "Talos job finished",
			Description: "One talos (performance) job, once its log is uploaded.",
			Schema:      TestSchema, RoutingKey: testKey("talos"),
		},
	}
}

var _ translator.Describer = (*Translator)(nil)
