package clickhouse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/statepipe/statepipe/schema"
)

// normalizer turns the values the driver scans for one column type into schema.Result's
// value types. It is built once per result column (newNormalizer) so the type string is
// parsed once, not per value.
type normalizer struct {
	base   string        // type without Nullable/LowCardinality wrappers, e.g. "DateTime64(3, 'UTC')"
	layout string        // time layout for Date, Date32, DateTime, DateTime64
	prec   int           // fractional digits of DateTime64(p) and Time64(p)
	elem   *normalizer   // Array's element
	key    *normalizer   // Map's key
	value  *normalizer   // Map's value
	fields []*normalizer // Tuple's elements
	names  []string      // named Tuple's element names
}

// normalize converts one scanned value of ClickHouse type typ (see newNormalizer).
func normalize(typ string, v any) any { return newNormalizer(typ).normalize(v) }

func newNormalizer(typ string) *normalizer {
	n := &normalizer{base: schema.ValueType(typ)}
	name, params := splitType(n.base)
	switch name {
	case "Date", "Date32":
		n.layout = "2006-01-02"
	case "DateTime":
		n.layout = "2006-01-02 15:04:05"
	case "DateTime64":
		n.prec = precision(params)
		n.layout = "2006-01-02 15:04:05"
		if n.prec > 0 {
			n.layout += "." + strings.Repeat("0", n.prec)
		}
	case "Time64":
		n.prec = precision(params)
	case "Array":
		n.elem = newNormalizer(params)
	case "Map":
		kv := splitTop(params)
		if len(kv) == 2 {
			n.key, n.value = newNormalizer(kv[0]), newNormalizer(kv[1])
		}
	case "Tuple":
		for _, f := range splitTop(params) {
			fname, ftype := "", f
			if i := topLevelSpace(f); i > 0 {
				fname, ftype = strings.Trim(f[:i], "`\""), strings.TrimSpace(f[i+1:])
			}
			n.names = append(n.names, fname)
			n.fields = append(n.fields, newNormalizer(ftype))
		}
	case "SimpleAggregateFunction":
		// SimpleAggregateFunction(func, T) reads as T.
		if ps := splitTop(params); len(ps) == 2 {
			return newNormalizer(ps[1])
		}
	}
	return n
}

// normalize converts one value. Nil and nil pointers (NULL of a Nullable column) become nil.
func (n *normalizer) normalize(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case int64:
		return x
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return x
		}
		return int64(x)
	case uint:
		return n.normalize(uint64(x))
	case float64:
		return finite(x)
	case float32:
		// The shortest decimal that reads back as this float32, as ClickHouse prints it:
		// toFloat32(0.1) is 0.1, not 0.10000000149011612.
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return finite(f)
	case bool:
		return x
	case time.Time:
		if n.layout == "" {
			return x.Format("2006-01-02 15:04:05.999999999")
		}
		// The driver returns times in the column's time zone (or the server's), which is the
		// zone ClickHouse prints them in.
		return x.Format(n.layout)
	case time.Duration:
		return formatDuration(x, n.prec)
	case uuid.UUID:
		return x.String()
	case net.IP:
		if n.base == "IPv6" && len(x) == net.IPv6len && x.To4() != nil {
			return "::ffff:" + x.To4().String() // ClickHouse prints mapped IPv4 this way
		}
		return x.String()
	case decimal.Decimal:
		return x.InexactFloat64()
	case *big.Int:
		if x == nil {
			return nil
		}
		if x.IsInt64() {
			return x.Int64()
		}
		if x.IsUint64() {
			return x.Uint64()
		}
		return x.String()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return n.normalize(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		if n.fields != nil { // unnamed Tuple scans as []any
			return n.tupleText(rv)
		}
		if n.elem == nil && rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 { // bytes of a non-Array type
			return string(rv.Bytes())
		}
		elem := n.elem
		if elem == nil {
			elem = &normalizer{}
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = elem.normalize(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if n.fields != nil { // named Tuple scans as map[string]any
			return n.namedTupleText(rv)
		}
		return n.mapText(rv)
	}
	// Anything else (Variant, Dynamic, JSON, geo types) as JSON text when it has a JSON form,
	// else Go's default formatting.
	if b, err := marshalJSON(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// Maps and tuples become the JSON text that ClickHouse's JSONCompact prints for them, the
// text the embedded adapter returns: {"k":1}, [1,"a"], {"a":1,"b":"x"} for a named tuple.

func (n *normalizer) tupleText(rv reflect.Value) string {
	items := make([]any, rv.Len())
	for i := range items {
		items[i] = n.field(i).normalize(rv.Index(i).Interface())
	}
	b, _ := marshalJSON(items)
	return string(b)
}

func (n *normalizer) namedTupleText(rv reflect.Value) string {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, name := range n.names {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := marshalJSON(name)
		buf.Write(k)
		buf.WriteByte(':')
		var v any
		if mv := rv.MapIndex(reflect.ValueOf(name)); mv.IsValid() {
			v = n.field(i).normalize(mv.Interface())
		}
		b, _ := marshalJSON(v)
		buf.Write(b)
	}
	buf.WriteByte('}')
	return buf.String()
}

// mapText writes a Map's entries with keys in sorted order: Go maps do not keep the order
// ClickHouse stores them in.
func (n *normalizer) mapText(rv reflect.Value) string {
	key, value := n.key, n.value
	if key == nil {
		key, value = &normalizer{}, &normalizer{}
	}
	type entry struct {
		k string
		v any
	}
	entries := make([]entry, 0, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		k := key.normalize(it.Key().Interface())
		ks, ok := k.(string)
		if !ok {
			ks = fmt.Sprint(k)
		}
		entries = append(entries, entry{ks, value.normalize(it.Value().Interface())})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, e := range entries {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := marshalJSON(e.k)
		buf.Write(k)
		buf.WriteByte(':')
		b, _ := marshalJSON(e.v)
		buf.Write(b)
	}
	buf.WriteByte('}')
	return buf.String()
}

func (n *normalizer) field(i int) *normalizer {
	if i < len(n.fields) {
		return n.fields[i]
	}
	return &normalizer{}
}

// marshalJSON is json.Marshal without HTML escaping (ClickHouse prints <, > and & as is).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// finite returns nil for NaN and ±Inf, as the embedded adapter does (ClickHouse's JSON output
// prints them as null), which also keeps a Result encodable as JSON.
func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

// formatDuration prints a Time or Time64(prec) value as ClickHouse does: [-]HHH:MM:SS[.fff].
func formatDuration(d time.Duration, prec int) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	h, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	out := fmt.Sprintf("%s%02d:%02d:%02d", sign, h, m, s)
	if prec > 0 {
		frac := fmt.Sprintf("%09d", d%time.Second)
		out += "." + frac[:min(prec, 9)]
	}
	return out
}

// splitType splits "Name(params)" into Name and params.
func splitType(t string) (name, params string) {
	i := strings.IndexByte(t, '(')
	if i < 0 || !strings.HasSuffix(t, ")") {
		return t, ""
	}
	return t[:i], t[i+1 : len(t)-1]
}

// precision reads the first parameter of DateTime64(p[, tz]) or Time64(p).
func precision(params string) int {
	ps := splitTop(params)
	if len(ps) == 0 {
		return 0
	}
	p, err := strconv.Atoi(ps[0])
	if err != nil || p < 0 {
		return 0
	}
	return min(p, 9)
}

// scanTop calls visit for every byte of s outside parentheses and quotes, with its index,
// until visit returns true.
func scanTop(s string, visit func(i int, c byte) bool) {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && visit(i, c):
			return
		}
	}
}

// splitTop splits type parameters on commas outside parentheses and quotes.
func splitTop(s string) []string {
	var out []string
	start := 0
	scanTop(s, func(i int, c byte) bool {
		if c == ',' {
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
		return false
	})
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// topLevelSpace returns the index of the first space outside parentheses and quotes (the
// separator of a named tuple element "name Type"), or -1.
func topLevelSpace(s string) int {
	at := -1
	scanTop(s, func(i int, c byte) bool {
		if c == ' ' {
			at = i
			return true
		}
		return false
	})
	return at
}
