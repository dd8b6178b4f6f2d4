// libvirt_bulk: a host's domain states in one libvirt call, off the event loop.
//
// open(uri) opens a read-only connection; Connection#readAll() calls
// virConnectGetAllDomainStats(STATE) and hands back columns (uuids, names, states,
// reasons); Connection#readByName(name) reads one domain. Every libvirt call runs in an
// AsyncWorker on libuv's pool. Each worker holds its own libvirt reference to the
// connection (virConnectRef, dropped at the end of Execute), so close() or garbage
// collection of the JS object while a read is in flight cannot free what the read uses.
// No domain handle outlives the worker that got it.
#include <napi.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace {

// libvirt prints every error to stderr unless a handler is set; we report them ourselves.
void SilentErrorHandler(void*, virErrorPtr) {}

struct LibvirtError {
  int code = 0;
  int domain = 0;
  std::string message;
  // The failed system call's errno, for VIR_ERR_SYSTEM_ERROR (libvirt keeps it in int1); else 0.
  int systemErrno = 0;
};

// This thread's last libvirt error (libvirt keeps them per thread).
LibvirtError LastError(const char* fallback) {
  virErrorPtr err = virGetLastError();
  if (err == nullptr) return {VIR_ERR_INTERNAL_ERROR, 0, fallback};
  int systemErrno = err->code == VIR_ERR_SYSTEM_ERROR && err->int1 > 0 ? err->int1 : 0;
  return {err->code, err->domain, err->message != nullptr ? err->message : fallback, systemErrno};
}

struct DomainRecord {
  std::string uuid;
  std::string name;
  int state = 0;
  int reason = 0;
};

// virDomainGetUUIDString formats with printf, 16 conversions per domain: a third of a bulk
// read's CPU through libvirtd (perf). The raw bytes and a table give the same text.
bool Describe(virDomainPtr dom, DomainRecord& record) {
  static const char kHex[] = "0123456789abcdef";
  unsigned char raw[VIR_UUID_BUFLEN];
  const char* name = virDomainGetName(dom);
  if (virDomainGetUUID(dom, raw) < 0 || name == nullptr) return false;
  char text[VIR_UUID_STRING_BUFLEN];
  char* out = text;
  for (int i = 0; i < VIR_UUID_BUFLEN; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
    *out++ = kHex[raw[i] >> 4];
    *out++ = kHex[raw[i] & 0x0f];
  }
  record.uuid.assign(text, out - text);
  record.name = name;
  return true;
}

// An AsyncWorker settling a promise: with ToJs() on success, or with libvirt's error
// (its message, plus libvirtCode, libvirtDomain and, for a system error, libvirtErrno) on failure.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual Napi::Value ToJs(Napi::Env env) { return env.Undefined(); }
  LibvirtError error_;

 private:
  void OnOK() override { deferred_.Resolve(ToJs(Env())); }
  void OnError(const Napi::Error& e) override {
    Napi::Object err = e.Value();
    err.Set("libvirtCode", Napi::Number::New(Env(), error_.code));
    err.Set("libvirtDomain", Napi::Number::New(Env(), error_.domain));
    if (error_.systemErrno != 0) err.Set("libvirtErrno", Napi::Number::New(Env(), error_.systemErrno));
    deferred_.Reject(err);
  }
  Napi::Promise::Deferred deferred_;
};

// Runs Read() against its own reference to the connection, taken on the JS thread when the
// read is queued and dropped as soon as Read() returns.
class ConnectionWorker : public PromiseWorker {
 public:
  ConnectionWorker(Napi::Env env, virConnectPtr conn) : PromiseWorker(env), conn_(conn) {
    if (conn_ != nullptr) virConnectRef(conn_);
  }

 protected:
  virtual bool Read(virConnectPtr conn) = 0;

 private:
  void Execute() override {
    if (conn_ == nullptr) error_ = {VIR_ERR_INVALID_CONN, 0, "connection is closed"};
    bool ok = conn_ != nullptr && Read(conn_);
    if (conn_ != nullptr) virConnectClose(conn_);  // our reference, not the connection
    conn_ = nullptr;
    if (!ok) SetError(error_.message);
  }
  virConnectPtr conn_;
};

class ReadAllWorker : public ConnectionWorker {
 public:
  ReadAllWorker(Napi::Env env, virConnectPtr conn, bool listOnly) : ConnectionWorker(env, conn), listOnly_(listOnly) {}

 private:
  bool Read(virConnectPtr conn) override {
    if (!listOnly_) {
      virDomainStatsRecordPtr* stats = nullptr;
      int n = virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE, &stats, 0);
      if (n >= 0) {
        bool ok = true;
        records_.reserve(n);
        for (int i = 0; i < n && ok; i++) {
          DomainRecord record;
          ok = Describe(stats[i]->dom, record) &&
               virTypedParamsGetInt(stats[i]->params, stats[i]->nparams, "state.state", &record.state) == 1 &&
               virTypedParamsGetInt(stats[i]->params, stats[i]->nparams, "state.reason", &record.reason) == 1;
          if (ok) records_.push_back(std::move(record));
          else error_ = LastError("a domain stats record lacks state.state or state.reason");
        }
        virDomainStatsRecordListFree(stats);
        return ok;
      }
      error_ = LastError("virConnectGetAllDomainStats failed");
      if (error_.code != VIR_ERR_NO_SUPPORT) return false;
    }
    return ReadByListing(conn);
  }

  // For drivers without the bulk call: list, then each domain's state; one that vanished
  // in between is skipped, as it would be absent from a later bulk read.
  bool ReadByListing(virConnectPtr conn) {
    virDomainPtr* doms = nullptr;
    int n = virConnectListAllDomains(conn, &doms, 0);
    if (n < 0) {
      error_ = LastError("virConnectListAllDomains failed");
      return false;
    }
    bool ok = true;
    for (int i = 0; i < n; i++) {
      DomainRecord record;
      if (ok && Describe(doms[i], record)) {
        if (virDomainGetState(doms[i], &record.state, &record.reason, 0) == 0) records_.push_back(std::move(record));
        else if ((error_ = LastError("virDomainGetState failed")).code != VIR_ERR_NO_DOMAIN) ok = false;
      } else if (ok) {
        error_ = LastError("domain UUID or name unreadable");
        ok = false;
      }
      virDomainFree(doms[i]);
    }
    free(doms);
    return ok;
  }

  // Columns: four arrays are cheaper to build than one object per domain.
  Napi::Value ToJs(Napi::Env env) override {
    size_t n = records_.size();
    Napi::Array uuids = Napi::Array::New(env, n);
    Napi::Array names = Napi::Array::New(env, n);
    Napi::Int32Array states = Napi::Int32Array::New(env, n);
    Napi::Int32Array reasons = Napi::Int32Array::New(env, n);
    for (size_t i = 0; i < n; i++) {
      uuids.Set(i, Napi::String::New(env, records_[i].uuid));
      names.Set(i, Napi::String::New(env, records_[i].name));
      states[i] = records_[i].state;
      reasons[i] = records_[i].reason;
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("uuids", uuids);
    result.Set("names", names);
    result.Set("states", states);
    result.Set("reasons", reasons);
    return result;
  }

  bool listOnly_;
  std::vector<DomainRecord> records_;
};

class ReadByNameWorker : public ConnectionWorker {
 public:
  ReadByNameWorker(Napi::Env env, virConnectPtr conn, std::string name) : ConnectionWorker(env, conn), name_(std::move(name)) {}

 private:
  bool Read(virConnectPtr conn) override {
    virDomainPtr dom = virDomainLookupByName(conn, name_.c_str());
    if (dom == nullptr) {
      error_ = LastError("virDomainLookupByName failed");
      return error_.code == VIR_ERR_NO_DOMAIN;  // not found: resolves null
    }
    bool ok = Describe(dom, record_) && virDomainGetState(dom, &record_.state, &record_.reason, 0) == 0;
    if (!ok) error_ = LastError("virDomainGetState failed");
    virDomainFree(dom);
    found_ = ok;
    return ok || error_.code == VIR_ERR_NO_DOMAIN;  // undefined between lookup and state: gone too
  }

  Napi::Value ToJs(Napi::Env env) override {
    if (!found_) return env.Null();
    Napi::Object result = Napi::Object::New(env);
    result.Set("uuid", record_.uuid);
    result.Set("name", record_.name);
    result.Set("state", record_.state);
    result.Set("reason", record_.reason);
    return result;
  }

  std::string name_;
  DomainRecord record_;
  bool found_ = false;
};

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string uri, Napi::FunctionReference* ctor) : PromiseWorker(env), uri_(std::move(uri)), ctor_(ctor) {}

 private:
  void Execute() override {
    conn_ = virConnectOpenReadOnly(uri_.c_str());
    if (conn_ != nullptr) return;
    error_ = LastError("virConnectOpenReadOnly failed");
    SetError(error_.message);
  }
  Napi::Value ToJs(Napi::Env env) override { return ctor_->New({Napi::External<virConnect>::New(env, conn_)}); }
  std::string uri_;
  Napi::FunctionReference* ctor_;
  virConnectPtr conn_ = nullptr;
};

class CloseWorker : public PromiseWorker {
 public:
  CloseWorker(Napi::Env env, virConnectPtr conn) : PromiseWorker(env), conn_(conn) {}

 private:
  void Execute() override {
    if (conn_ != nullptr) virConnectClose(conn_);
  }
  virConnectPtr conn_;
};

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Connection",
                       {InstanceMethod<&Connection::ReadAll>("readAll"), InstanceMethod<&Connection::ReadByName>("readByName"),
                        InstanceMethod<&Connection::IsAlive>("isAlive"), InstanceMethod<&Connection::Close>("close")});
  }

  explicit Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      Napi::TypeError::New(info.Env(), "use open(uri)").ThrowAsJavaScriptException();
      return;
    }
    conn_ = info[0].As<Napi::External<virConnect>>().Data();
  }
  // Garbage-collected without close(): drop the JS object's reference (in-flight workers hold theirs).
  ~Connection() override {
    if (conn_ != nullptr) virConnectClose(conn_);
  }

 private:
  Napi::Value ReadAll(const Napi::CallbackInfo& info) {
    auto* worker = new ReadAllWorker(info.Env(), conn_, info.Length() > 0 && info[0].ToBoolean().Value());
    worker->Queue();
    return worker->Promise();
  }
  Napi::Value ReadByName(const Napi::CallbackInfo& info) {
    if (info.Length() != 1 || !info[0].IsString()) {
      Napi::TypeError::New(info.Env(), "readByName(name: string)").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    auto* worker = new ReadByNameWorker(info.Env(), conn_, info[0].As<Napi::String>().Utf8Value());
    worker->Queue();
    return worker->Promise();
  }
  // Local: asks the daemon nothing; false once a call found the connection broken.
  Napi::Value IsAlive(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), conn_ != nullptr && virConnectIsAlive(conn_) == 1);
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    auto* worker = new CloseWorker(info.Env(), conn_);
    conn_ = nullptr;
    worker->Queue();
    return worker->Promise();
  }

  virConnectPtr conn_ = nullptr;
};

Napi::Value Open(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsString()) {
    Napi::TypeError::New(info.Env(), "open(uri: string)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto* worker = new OpenWorker(info.Env(), info[0].As<Napi::String>().Utf8Value(), info.Env().GetInstanceData<Napi::FunctionReference>());
  worker->Queue();
  return worker->Promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (virInitialize() < 0) {
    Napi::Error::New(env, "virInitialize failed").ThrowAsJavaScriptException();
    return exports;
  }
  virSetErrorFunc(nullptr, SilentErrorHandler);
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(Connection::Define(env)));
  env.SetInstanceData<Napi::FunctionReference>(ctor);
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  return exports;
}

}  // namespace

NODE_API_MODULE(virtsync_libvirt_bulk, Init)
