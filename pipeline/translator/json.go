package translator

import (
	"iter"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/rawjson"
)

// Elements yields the raw JSON of each element of the array raw, in order:
// a value Lookup returned, or part of one. It reads raw once, by its
// quotes and brackets, and never panics; raw that is not an array yields
// nothing. A translator reads the arrays of a body with it without
// decoding what it does not need.
func Elements(raw []byte) iter.Seq[[]byte] { return rawjson.Elements(raw) }

// Unquote returns the text of raw, a JSON string as Lookup or Elements
// gave it, as encoding/json decodes it, and whether raw is a string.
// Without escapes the text is raw's own bytes, not a copy: do not change
// them.
func Unquote(raw []byte) ([]byte, bool) { return rawjson.Unquote(raw) }
