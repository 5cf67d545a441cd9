package proxy

import (
	"reflect"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// Route.Same must see a change in any exported field of Route and of its
// RouteOptions, including one added after it was written.
func TestRouteSameSeesEveryField(t *testing.T) {
	base := Route{Service: "web", Hosts: []string{"a.example.com"}, Path: "/", Pool: balancer.NewPool("web")}
	if !base.Same(base) {
		t.Fatalf("Same(itself): got false, want true")
	}
	if a, b := (Route{Hosts: nil}), (Route{Hosts: []string{}}); !a.Same(b) {
		t.Errorf("no hosts as nil and as empty: got not the same, want the same")
	}
	set := base
	set.hashHeader, set.cookieName = "X-Derived", "dlb_derived"
	if !base.Same(set) {
		t.Errorf("routes differing only in fields Router.Set derives: got not the same, want the same")
	}
	// change changes the field at index path of a copy of base.
	var walk func(typ reflect.Type, path []int)
	walk = func(typ reflect.Type, path []int) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			at := append(append([]int(nil), path...), i)
			changed := base
			v := reflect.ValueOf(&changed).Elem().FieldByIndex(at)
			switch f.Type {
			case reflect.TypeOf(""):
				v.SetString(v.String() + "x")
			case reflect.TypeOf(false):
				v.SetBool(!v.Bool())
			case reflect.TypeOf(int64(0)), reflect.TypeOf(time.Duration(0)):
				v.SetInt(v.Int() + 1)
			case reflect.TypeOf([]string(nil)):
				v.Set(reflect.ValueOf(append(append([]string(nil), base.Hosts...), "b.example.com")))
			case reflect.TypeOf((*balancer.Pool)(nil)):
				v.Set(reflect.ValueOf(balancer.NewPool("web")))
			case reflect.TypeOf(RouteOptions{}):
				walk(f.Type, at)
				continue
			default:
				t.Fatalf("field %s of type %s: this test cannot change it yet; teach it how", f.Name, f.Type)
			}
			if base.Same(changed) {
				t.Errorf("routes differing in %s: got the same, want not the same", f.Name)
			}
		}
	}
	walk(reflect.TypeOf(base), nil)
}
