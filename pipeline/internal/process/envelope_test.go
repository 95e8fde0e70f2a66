package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
)

// marshalReference is the envelope as encoding/json writes it.
func marshalReference(r Routed, sent time.Time) ([]byte, error) {
	if r.Output.Envelope == config.EnvelopeBare {
		return json.Marshal(r.Payload)
	}
	return json.Marshal(struct {
		Payload map[string]any   `json:"payload"`
		Meta    mozillaPulseMeta `json:"_meta"`
	}{r.Payload, mozillaPulseMeta{r.Output.Exchange, r.RoutingKey, "json", sent.UTC().Format(time.RFC3339)}})
}

// mozillaPulseMeta is the _meta object of the mozillapulse envelope.
type mozillaPulseMeta struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
	Serializer string `json:"serializer"`
	Sent       string `json:"sent"`
}

// unsafeInteger reports an integer beyond ±2^53.
func unsafeInteger(n *big.Int) bool {
	return n.CmpAbs(new(big.Int).Lsh(big.NewInt(1), 53)) > 0
}

// unsafeNumberText reports a valid JSON number that consumers cannot read
// exactly: an integer beyond ±2^53, or a number beyond a double's range.
func unsafeNumberText(s string) bool {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return false
	}
	if _, isNumber := v.(float64); !isNumber {
		return false
	}
	if n, ok := new(big.Int).SetString(s, 10); ok {
		return unsafeInteger(n)
	}
	f, _, err := big.ParseFloat(s, 10, 256, big.ToNearestEven)
	if err != nil {
		return false
	}
	abs, _ := new(big.Float).Abs(f).Float64()
	return math.IsInf(abs, 0)
}

// FuzzBodyMatchesEncodingJSON checks Body writes exactly encoding/json's
// bytes, for payloads of every JSON type and any string, but for numbers
// consumers cannot read exactly, which it refuses.
func FuzzBodyMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"plain", "a\"b\\c", "<&>", "\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "é漢字🙂", "\t\n\r\b\f"} {
		f.Add(s, s+"key", 1.5, int64(-42))
	}
	f.Fuzz(func(t *testing.T, s, key string, fl float64, n int64) {
		payload := map[string]any{
			key: s, "n": n, "i": int(n), "f": fl, "f2": fl / 1e9, "f3": fl * 1e25, "num": json.Number("12.50"), "numfuzz": json.Number(s), "t": true, "nil": nil,
			"list": []any{s, 1.0, nil, map[string]any{s: key}}, "strings": []string{s, key},
			"nested": map[string]any{"z": s, "a": []any{}}, "empty": map[string]any{},
		}
		if fl != fl || fl > 1e308 || fl < -1e308 {
			delete(payload, "f") // NaN and infinities are not JSON
		}
		unsafe := unsafeInteger(big.NewInt(n)) || unsafeNumberText(s)
		for _, env := range []config.Envelope{config.EnvelopeMozillaPulse, config.EnvelopeBare} {
			r := Routed{Output: &config.OutputConfig{Exchange: "exchange/" + key, Envelope: env}, RoutingKey: s, Payload: payload}
			sent := time.Unix(1446634715, 0)
			got, err := Body(r, sent)
			want, werr := marshalReference(r, sent)
			var unsafeErr *UnsafeNumberError
			if werr == nil && unsafe {
				if !errors.As(err, &unsafeErr) {
					t.Fatalf("a payload with an unsafe number (n %d, number %q) gave %v, want an *UnsafeNumberError", n, s, err)
				}
				continue
			}
			if (err == nil) != (werr == nil) {
				t.Fatalf("error %v, encoding/json's %v", err, werr)
			}
			if string(got) != string(want) {
				t.Fatalf("Body:\n%s\nencoding/json:\n%s", got, want)
			}
		}
	})
}

// TestBodyKeyOrder holds the order of object members to encoding/json's
// (byte order of keys) where sorting on key prefixes could go wrong: keys
// that are prefixes of others, equal first eight bytes, NUL bytes,
// non-ASCII, and objects too large for the insertion sort.
func TestBodyKeyOrder(t *testing.T) {
	keys := []string{"", "a", "a\x00", "a\x00\x00", "ab", "build", "buildid", "buildid\x00", "buildid_", "builddate",
		"buildername", "build_number", "build_url", "buildtype", "buildurl", "12345678", "123456789", "12345678a",
		"1234567", "\x00", "\x00\x00\x00\x00\x00\x00\x00\x00\x01", "\xff", "é", "z", "Z", "~", "key with spaces", "\u2028"}
	small := map[string]any{}
	for i, k := range keys {
		small[k] = i
	}
	large := map[string]any{}
	for i := range 300 {
		large[fmt.Sprintf("k%d", i*7919%1000)] = i
		large[fmt.Sprintf("prefix-shared-%d", i)] = []any{i}
	}
	for name, payload := range map[string]map[string]any{"small": small, "large": large, "nested": {"o": small, "p": large}} {
		r := Routed{Output: &config.OutputConfig{Envelope: config.EnvelopeBare}, Payload: payload}
		got, err := Body(r, time.Time{})
		want, werr := json.Marshal(payload)
		if err != nil || werr != nil || string(got) != string(want) {
			t.Errorf("%s: Body:\n%s\nencoding/json:\n%s", name, got, want)
		}
	}
}
