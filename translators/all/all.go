// Package all pulls every translator plugin of this repository into a
// binary. Its only job is blank imports, one per plugin; a new plugin adds
// one line here and nothing else outside its own folder.
package all

import (
	// buildbot: raw Buildbot pulse messages to normalized build and test messages.
	_ "github.com/pulsetranslator/pulsetranslator/translators/buildbot"
	// mapping: any JSON stream, by the expressions of a rule file's mapping table.
	_ "github.com/pulsetranslator/pulsetranslator/translators/mapping"
)
