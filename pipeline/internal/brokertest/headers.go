package brokertest

import (
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// HeaderTable makes an AMQP header table of fuzz data: names and values of
// every field type a delivery can hold, nested, read from the bytes, with
// strings and byte arrays repeated to reach large sizes.
func HeaderTable(data []byte, repeat int) amqp.Table {
	budget := 256
	return tableFrom(data, repeat, 0, &budget)
}

// tableFrom reads a table of data; budget bounds the values made in all,
// nested ones included, so that one input cannot make millions.
func tableFrom(data []byte, repeat, depth int, budget *int) amqp.Table {
	t := amqp.Table{}
	for len(data) > 1 && len(t) < 64 && *budget > 0 {
		*budget--
		n := min(int(data[0])%32, len(data)-1)
		name := string(data[1 : 1+n])
		data = data[1+n:]
		if name == "" {
			name = "h"
		}
		if len(data) == 0 {
			t[name] = nil
			break
		}
		kind := data[0]
		data = data[1:]
		switch kind % 9 {
		case 0:
			t[name] = strings.Repeat(string(data[:min(len(data), 8)]), 1+repeat%700)
		case 1:
			t[name] = int64(len(data)) * int64(repeat)
		case 2:
			if depth < 3 {
				t[name] = []interface{}{"x", int32(repeat), tableFrom(data[:min(len(data), 32)], repeat, depth+1, budget)}
			}
		case 3:
			t[name] = float64(repeat) / 7
		case 4:
			t[name] = kind%2 == 0
		case 5:
			t[name] = []byte(strings.Repeat("b", repeat%5000))
		case 6:
			t[name] = time.Unix(int64(repeat), 0)
		case 7:
			if depth < 3 {
				t[name] = tableFrom(data[:min(len(data), 32)], repeat/2, depth+1, budget)
			}
		case 8:
			t[name] = amqp.Decimal{Scale: kind, Value: int32(repeat)}
		}
	}
	return t
}
