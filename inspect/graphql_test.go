package inspect

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tidwall/gjson"
)

type graphQLCase struct {
	name    string
	query   string
	opName  string
	want    GraphQLOperation // Type, Name, Fields
	wantErr bool
}

// graphQLCases are shared with FuzzParseGraphQL as seeds.
var graphQLCases = []graphQLCase{
	{name: "shorthand", query: "{ viewer { login } }", want: GraphQLOperation{Type: "query", Name: "viewer", Fields: []string{"viewer"}}},
	{name: "named query", query: "query Me { viewer { login } rateLimit { remaining } }", want: GraphQLOperation{Type: "query", Name: "Me", Fields: []string{"viewer", "rateLimit"}}},
	{name: "anonymous mutation keyword", query: "mutation { addStar(input: {starrableId: \"x\"}) { clientMutationId } }", want: GraphQLOperation{Type: "mutation", Name: "addStar", Fields: []string{"addStar"}}},
	{name: "alias resolved", query: "mutation { innocent: deleteRepository(input: {id: 1}) { id } }", want: GraphQLOperation{Type: "mutation", Name: "deleteRepository", Fields: []string{"deleteRepository"}}},
	{name: "variables, directives, defaults", query: `query Q($id: ID! = "a", $n: [Int!]! @deprecated) @live { node(id: $id) @include(if: true) { id } }`, want: GraphQLOperation{Type: "query", Name: "Q", Fields: []string{"node"}}},
	{name: "braces in strings and comments", query: "mutation M {\n  # } fake close\n  a(s: \"} { \\\" }\", b: \"\"\"\n } \\\"\"\" {\n\"\"\") { x }\n  b\n}", want: GraphQLOperation{Type: "mutation", Name: "M", Fields: []string{"a", "b"}}},
	{name: "commas and BOM ignored", query: "\uFEFF{ a, b, c }", want: GraphQLOperation{Type: "query", Name: "a", Fields: []string{"a", "b", "c"}}},
	{name: "duplicate fields once", query: "{ a x: a b }", want: GraphQLOperation{Type: "query", Name: "a", Fields: []string{"a", "b"}}},
	{name: "select by operationName", query: "query A { a } mutation B { b } subscription C { c }", opName: "B", want: GraphQLOperation{Type: "mutation", Name: "B", Fields: []string{"b"}}},
	{name: "subscription", query: "subscription OnIssue { issueUpdated { id } }", want: GraphQLOperation{Type: "subscription", Name: "OnIssue", Fields: []string{"issueUpdated"}}},
	{name: "fragment spread at root", query: "mutation M { ...F a } fragment F on Mutation { deleteRepo(id: 1) { id } ...G } fragment G on Mutation { transferRepo }", want: GraphQLOperation{Type: "mutation", Name: "M", Fields: []string{"deleteRepo", "transferRepo", "a"}}},
	{name: "fragment defined first", query: "fragment F on Query { secret } query { ...F }", want: GraphQLOperation{Type: "query", Name: "secret", Fields: []string{"secret"}}},
	{name: "inline fragments at root", query: "mutation { ... on Mutation { x } ... @include(if: true) { y } ... { z: w } }", want: GraphQLOperation{Type: "mutation", Name: "x", Fields: []string{"x", "y", "w"}}},
	{name: "nested fields are not root", query: "{ repository(owner: \"a\", name: \"b\") { issues(first: 10) { nodes { title } } } }", want: GraphQLOperation{Type: "query", Name: "repository", Fields: []string{"repository"}}},
	{name: "numbers and lists in arguments", query: "{ a(f: -1.5e3, l: [1, 2, [3]], o: {k: [{}]}, e: ENUM, n: null, t: true) }", want: GraphQLOperation{Type: "query", Name: "a", Fields: []string{"a"}}},
	{name: "several operations without name", query: "query A { a } query B { b }", wantErr: true},
	{name: "operationName not found", query: "query A { a }", opName: "Z", wantErr: true},
	{name: "anonymous plus named", query: "{ a } query B { b }", opName: "B", wantErr: true},
	{name: "duplicate operation names", query: "query A { a } query A { b }", opName: "A", wantErr: true},
	{name: "unknown fragment", query: "{ ...Nope }", wantErr: true},
	{name: "fragment cycle", query: "{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }", wantErr: true},
	{name: "duplicate fragment", query: "{ ...A } fragment A on Q { a } fragment A on Q { b }", wantErr: true},
	{name: "fragment named on", query: "{ a } fragment on on Q { a }", wantErr: true},
	{name: "empty document", query: "  # nothing\n", wantErr: true},
	{name: "only fragments", query: "fragment A on Q { a }", wantErr: true},
	{name: "type system definition", query: "type Query { a: String }", wantErr: true},
	{name: "unclosed selection", query: "mutation { a(x: 1) { b }", wantErr: true},
	{name: "unbalanced arguments", query: "{ a(x: [1) }", wantErr: true},
	{name: "empty selection", query: "{ }", wantErr: true},
	{name: "unterminated string", query: "{ a(s: \"abc) }", wantErr: true},
	{name: "newline in string", query: "{ a(s: \"ab\nc\") }", wantErr: true},
	{name: "unterminated block string", query: `{ a(s: """abc) }`, wantErr: true},
	{name: "bad character", query: "{ a; }", wantErr: true},
	{name: "single dot", query: "{ .a }", wantErr: true},
	{name: "alias without field", query: "{ a: }", wantErr: true},
	{name: "trailing garbage", query: "{ a } }", wantErr: true},
	{name: "deep inline fragments", query: strings.Repeat("{ ... ", 40) + "a" + strings.Repeat(" }", 40), wantErr: true},
}

func TestParseGraphQL(t *testing.T) {
	t.Parallel()
	vars := gjson.Parse(`{"v":1}`)
	for _, tc := range graphQLCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ops, err := ParseGraphQL(tc.query, tc.opName, vars)
			if tc.wantErr {
				checkDecodeErr(t, err, ErrMalformed, StageGraphQL)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if len(ops) != 1 {
				t.Fatalf("got %d operations, want 1", len(ops))
			}
			if diff := cmp.Diff(tc.want, ops[0], cmpopts.IgnoreFields(GraphQLOperation{}, "Variables", "Query")); diff != "" {
				t.Errorf("operation (-want +got):\n%s", diff)
			}
			if ops[0].Query != tc.query || ops[0].Variables.Raw != vars.Raw {
				t.Errorf("got query %q vars %q, want the inputs back", ops[0].Query, ops[0].Variables.Raw)
			}
		})
	}
}

func TestParseGraphQLErrorPosition(t *testing.T) {
	t.Parallel()
	_, err := ParseGraphQL("query {\n  a(x: 1\n}", "", gjson.Result{})
	if err == nil || !strings.Contains(err.Error(), "3:1") {
		t.Errorf("got %v, want an error at 3:1", err)
	}
}

// A document whose fragments each spread the next one twice would take
// exponential time to expand naively.
func TestParseGraphQLFragmentFanOut(t *testing.T) {
	t.Parallel()
	var sb strings.Builder
	sb.WriteString("{ ...F0 }\n")
	const n = 60
	for i := range n {
		sb.WriteString("fragment F")
		sb.WriteString(itoa(i))
		sb.WriteString(" on Q { ...F")
		sb.WriteString(itoa(i + 1))
		sb.WriteString(" ...F")
		sb.WriteString(itoa(i + 1))
		sb.WriteString(" }\n")
	}
	sb.WriteString("fragment F" + itoa(n) + " on Q { leaf }")
	ops, err := ParseGraphQL(sb.String(), "", gjson.Result{})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if !cmp.Equal(ops[0].Fields, []string{"leaf"}) {
		t.Errorf("got fields %v, want [leaf]", ops[0].Fields)
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
