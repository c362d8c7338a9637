package insights

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/fredcode/fredtel/schema"
)

// Prices is a price per input and output token for each model, read by
// [LoadPrices] from a small text table (docs/insights.md):
//
//	# currency USD
//	# model        input per 1M tokens   output per 1M tokens
//	fred-flash     0.10                  0.40
//	fred-pro       1.25                  10.00
type Prices struct {
	// Currency is the code of the currency line ("# currency EUR"),
	// default USD.
	Currency string
	// Models maps a model name to its prices per million tokens.
	Models map[string]Price
}

// Price is what a model costs per million input and output tokens.
type Price struct {
	InputPerM, OutputPerM float64
}

// maxPricesFile bounds what LoadPrices reads: a price table is a few lines.
const maxPricesFile = 1 << 20

// LoadPrices reads a prices file. An error names the file and line.
func LoadPrices(path string) (*Prices, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	defer f.Close()
	p, err := ParsePrices(io.LimitReader(f, maxPricesFile+1))
	if err != nil {
		return nil, fmt.Errorf("prices %s%w", path, err)
	}
	return p, nil
}

// ParsePrices reads the prices table from r; errors start with ":LINE: ".
func ParsePrices(r io.Reader) (*Prices, error) {
	p := &Prices{Currency: "USD", Models: map[string]Price{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	n, size := 0, 0
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > maxPricesFile {
			return nil, fmt.Errorf(":%d: file larger than %d bytes", n, maxPricesFile)
		}
		line := strings.TrimSpace(sc.Text())
		if c, ok := strings.CutPrefix(line, "#"); ok {
			f := strings.Fields(c)
			if len(f) == 2 && strings.EqualFold(f[0], "currency") {
				if len(f[1]) != 3 || strings.ToUpper(f[1]) != f[1] || strings.ContainsFunc(f[1], func(r rune) bool { return r < 'A' || r > 'Z' }) {
					return nil, fmt.Errorf(":%d: currency: want a 3-letter code such as USD", n)
				}
				p.Currency = f[1]
			}
			continue
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf(":%d: want MODEL INPUT_PER_1M OUTPUT_PER_1M, got %d fields", n, len(f))
		}
		if !schema.PatModel().Match(f[0]) {
			return nil, fmt.Errorf(":%d: model: want %s", n, schema.PatModel().Doc())
		}
		if _, dup := p.Models[f[0]]; dup {
			return nil, fmt.Errorf(":%d: model %s priced twice", n, f[0])
		}
		var pr [2]float64
		for i, s := range f[1:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf(":%d: %s price: want a number ≥ 0", n, [2]string{"input", "output"}[i])
			}
			pr[i] = v
		}
		p.Models[f[0]] = Price{InputPerM: pr[0], OutputPerM: pr[1]}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf(":%d: line longer than 4096 bytes", n+1)
		}
		return nil, fmt.Errorf(": %w", err)
	}
	if len(p.Models) == 0 {
		return nil, fmt.Errorf(": no model priced")
	}
	return p, nil
}

// price fills in the cost of im, spent on model, from p; a model p does
// not price leaves Cost nil and its tokens in UnpricedTokens, and is added to
// unpriced.
func (p *Prices) price(im *Impact, model string, unpriced map[string]bool) {
	if p == nil {
		return
	}
	if im.Tokens == 0 {
		zero := 0.0 // time alone costs no tokens, whatever the model
		im.Cost = &zero
		return
	}
	pr, ok := p.Models[model]
	if !ok {
		if im.Tokens > 0 {
			unpriced[model] = true
			im.UnpricedTokens = im.Tokens
		}
		return
	}
	c := (float64(im.InputTokens)*pr.InputPerM + float64(im.OutputTokens)*pr.OutputPerM) / 1e6
	im.Cost = &c
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
