// Command health evaluates Kubernetes objects the way Flux and Argo CD do, with their own libraries:
// kstatus from sigs.k8s.io/cli-utils (what Flux's health checks use) and, with -lua, an Argo CD
// resource health script run by gopher-lua (the Lua runtime Argo CD embeds).
//
// Input on stdin: a JSON array of objects. Output on stdout: a JSON array, one entry per object:
// {"kstatus": "...", "kstatusMessage": "...", "argo": "...", "argoMessage": "..."}.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kstatus        string `json:"kstatus"`
	KstatusMessage string `json:"kstatusMessage"`
	Argo           string `json:"argo,omitempty"`
	ArgoMessage    string `json:"argoMessage,omitempty"`
}

func main() {
	script := flag.String("lua", "", "Argo CD health.lua to evaluate as well")
	flag.Parse()
	var raws []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&raws); err != nil {
		fail("stdin: not a JSON array of objects: %v", err)
	}
	source := ""
	if *script != "" {
		data, err := os.ReadFile(*script)
		if err != nil {
			fail("%v", err)
		}
		source = string(data)
	}
	out := make([]verdict, 0, len(raws))
	for i, raw := range raws {
		// As the API machinery reads objects: integers stay int64, as kstatus expects.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fail("object %d: %v", i, err)
		}
		obj := u.Object
		result, err := status.Compute(u)
		if err != nil {
			fail("object %d: kstatus: %v", i, err)
		}
		v := verdict{Kstatus: result.Status.String(), KstatusMessage: result.Message}
		if source != "" {
			v.Argo, v.ArgoMessage, err = argoHealth(source, obj)
			if err != nil {
				fail("object %d: %s: %v", i, *script, err)
			}
		}
		out = append(out, v)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("%v", err)
	}
}

// argoHealth runs a health script as Argo CD does: a fresh VM with the base, table, string and math
// libraries, the object as the global `obj`, and the table the script returns read as status/message.
func argoHealth(source string, obj map[string]interface{}) (string, string, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(source); err != nil {
		return "", "", err
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message")), nil
}

func toLua(L *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		table := L.NewTable()
		for _, item := range v {
			table.Append(toLua(L, item))
		}
		return table
	case map[string]interface{}:
		table := L.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(L, item))
		}
		return table
	default:
		panic(fmt.Sprintf("unexpected JSON value %T", value))
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "health: "+format+"\n", args...)
	os.Exit(2)
}
