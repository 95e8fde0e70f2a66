package cli

// The command line's tests run it with this repository's plugins, as
// cmd/pulsetranslator does.
import _ "github.com/pulsetranslator/pulsetranslator/translators/all"
