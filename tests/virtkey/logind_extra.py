'''logind mock for keyward's bench: python-dbusmock's stock "logind" template plus what
keywardd needs from logind and the stock template lacks.

Loaded by keyward-testbed --bus as
    /usr/bin/python3 -m dbusmock --system -t /abs/path/logind_extra.py -l LOG

Added or changed (Manager = org.freedesktop.login1.Manager on /org/freedesktop/login1):
- GetSession(id): org.freedesktop.login1.NoSuchSession for an unknown id.
- GetSessionByPID(pid): like logind, the session the process is in: the session whose
  Leader is pid; else Mock.SetSessionByPID(pid, id) for it or, failing
  that, for its nearest ancestor (a child stays in its parent's session scope, as in
  logind's cgroups); else the one set for pid 0 (a default: "any other pid"); else
  org.freedesktop.login1.NoSessionForPID, as logind answers for a pid outside any session.
  Mock.HangGetSessionByPID(True): it never answers (a logind that hangs; callers time out).
- LockSession(id) / LockSessions(): emit Lock on the session object(s) (like logind);
  UnlockSession(id) / UnlockSessions(): emit Unlock. Unknown id: NoSuchSession.
  LockedHint stays as it is unless Mock.SetScreenLocker(True) was called: then a Lock
  sets LockedHint to true (a screen locker that works) and Unlock sets it false.
- TerminateSession(id): removes the session object (also from its seat and user),
  emits SessionRemoved(id, path). Unknown id: NoSuchSession.
- Mock.AddSession(...) emits SessionNew(id, path) and, like CreateSession, places its
  caller in the new session unless the caller is in one already (logind's SessionBusy).
- Session.SetLockedHint(b) (stock) and org.freedesktop.DBus.Properties.Set of LockedHint
  both change LockedHint; Mock.UpdateProperties works as usual.
Every call is recorded by dbusmock (GetMethodCalls on the object, the -l log file, the
MethodCalled signal).
'''

import dbus
from dbusmock import MOCK_IFACE, mockobject
from dbusmock.templates import logind as stock
# the stock template's D-Bus methods (ListSessions, AddSession, ...) must be module
# symbols here so that dbusmock exports them
from dbusmock.templates.logind import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import

BUS_NAME = stock.BUS_NAME
MAIN_OBJ = stock.MAIN_OBJ
MAIN_IFACE = stock.MAIN_IFACE
SYSTEM_BUS = True

SESSION_IFACE = 'org.freedesktop.login1.Session'
SEAT_IFACE = 'org.freedesktop.login1.Seat'
USER_IFACE = 'org.freedesktop.login1.User'
SESSION_PREFIX = '/org/freedesktop/login1/session/'

_state = {'pid_sessions': {}, 'screen_locker': False, 'hang_by_pid': False}


def _no_such_session(session_id):
    return dbus.exceptions.DBusException(f'No session "{session_id}" known',
                                         name='org.freedesktop.login1.NoSuchSession')


def _session_obj(session_id):
    path = SESSION_PREFIX + session_id
    obj = mockobject.objects.get(path)
    if obj is None:
        raise _no_such_session(session_id)
    return path, obj


def _sessions():
    return [(p.split('/')[-1], p, o) for p, o in mockobject.objects.items() if p.startswith(SESSION_PREFIX)]


def _lock(obj, lock):
    obj.EmitSignal(SESSION_IFACE, 'Lock' if lock else 'Unlock', '', [])
    if _state['screen_locker']:
        obj.UpdateProperties(SESSION_IFACE, {'LockedHint': dbus.Boolean(lock)})


def load(mock, parameters):
    stock.load(mock, parameters)
    _state['pid_sessions'] = {}
    _state['screen_locker'] = False
    _state['hang_by_pid'] = False
    # stock.load() just replaced our versions of these with its no-ops: put ours back,
    # the way dbusmock's AddTemplate() installs template methods
    for fn in (GetSession, LockSession, LockSessions, UnlockSession, UnlockSessions, TerminateSession):
        wrapped = mockobject.loggedmethod(mock, fn)
        setattr(mock.__class__, fn.__name__, wrapped)
        mock.methods.setdefault(MAIN_IFACE, {})[fn.__name__] = (
            fn._dbus_in_signature, fn._dbus_out_signature, '', wrapped)  # pylint: disable=protected-access


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='o')
def GetSession(self, session_id):
    path, _ = _session_obj(session_id)
    return dbus.ObjectPath(path)


def _parent(pid):
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii', errors='replace') as f:
            return int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _session_of(pid):
    """logind's order: a session's leader first, then the process's own scope."""
    for sid, _, obj in _sessions():
        if int(obj.props[SESSION_IFACE]['Leader']) == pid and pid != 0:
            return sid
    seen = set()
    p = pid
    while p > 1 and p not in seen:
        seen.add(p)
        mapped = _state['pid_sessions'].get(p)
        if mapped is not None:
            return mapped
        p = _parent(p)
    return _state['pid_sessions'].get(0)


@dbus.service.method(MAIN_IFACE, in_signature='u', out_signature='o',
                     async_callbacks=('reply', 'error'))
def GetSessionByPID(self, pid, reply, error):
    if _state['hang_by_pid']:
        return  # neither reply nor error: the caller's timeout decides
    sid = _session_of(int(pid))
    if sid is None:
        error(dbus.exceptions.DBusException(f'PID {int(pid)} does not belong to any known session',
                                            name='org.freedesktop.login1.NoSessionForPID'))
        return
    try:
        reply(dbus.ObjectPath(_session_obj(sid)[0]))
    except dbus.exceptions.DBusException as x:
        error(x)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def LockSession(self, session_id):
    _lock(_session_obj(session_id)[1], True)


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='')
def LockSessions(self):
    for _, _, obj in _sessions():
        _lock(obj, True)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def UnlockSession(self, session_id):
    _lock(_session_obj(session_id)[1], False)


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='')
def UnlockSessions(self):
    for _, _, obj in _sessions():
        _lock(obj, False)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def TerminateSession(self, session_id):
    path, obj = _session_obj(session_id)
    seat_path = str(obj.props[SESSION_IFACE]['Seat'][1])
    user_path = str(obj.props[SESSION_IFACE]['User'][1])
    for owner_path, iface in ((seat_path, SEAT_IFACE), (user_path, USER_IFACE)):
        owner = mockobject.objects.get(owner_path)
        if owner is None:
            continue
        sessions = [s for s in owner.props[iface]['Sessions'] if str(s[1]) != path]
        owner.Set(iface, 'Sessions', dbus.Array(sessions, signature='(so)'))
        if iface == SEAT_IFACE and str(owner.props[iface]['ActiveSession'][1]) == path:
            owner.Set(iface, 'ActiveSession', ('', dbus.ObjectPath('/')))
    for pid in [p for p, s in _state['pid_sessions'].items() if s == session_id]:
        del _state['pid_sessions'][pid]
    self.RemoveObject(path)
    self.EmitSignal(MAIN_IFACE, 'SessionRemoved', 'so', [session_id, dbus.ObjectPath(path)])


@dbus.service.method(MOCK_IFACE, in_signature='ssusb', out_signature='s', sender_keyword='sender')
def AddSession(self, session_id, seat, uid, username, active, sender=None):
    '''Like the stock AddSession, and emits SessionNew. Like logind's CreateSession, it
    places the calling process in the new session, unless it is in one already.'''
    path = stock.AddSession(self, session_id, seat, uid, username, active)
    try:
        pid = int(self.connection.call_blocking('org.freedesktop.DBus', '/org/freedesktop/DBus',
                                                'org.freedesktop.DBus', 'GetConnectionUnixProcessID',
                                                's', (sender,)))
    except (dbus.exceptions.DBusException, TypeError, ValueError):
        pid = 0
    if pid > 1 and _session_of(pid) is None:
        _state['pid_sessions'][pid] = str(session_id)
    self.EmitSignal(MAIN_IFACE, 'SessionNew', 'so', [session_id, dbus.ObjectPath(path)])
    return path


@dbus.service.method(MOCK_IFACE, in_signature='us', out_signature='')
def SetSessionByPID(self, pid, session_id):
    '''GetSessionByPID(pid) answers session_id (pid 0: the answer for any unknown pid).
    An empty session_id removes the mapping.'''
    if session_id:
        _session_obj(session_id)
        _state['pid_sessions'][int(pid)] = str(session_id)
    else:
        _state['pid_sessions'].pop(int(pid), None)


@dbus.service.method(MOCK_IFACE, in_signature='b', out_signature='')
def HangGetSessionByPID(self, hang):
    '''True: GetSessionByPID never answers (a hung logind).'''
    _state['hang_by_pid'] = bool(hang)


@dbus.service.method(MOCK_IFACE, in_signature='b', out_signature='')
def SetScreenLocker(self, works):
    '''True: Lock/Unlock signals set LockedHint like a working screen locker would.'''
    _state['screen_locker'] = bool(works)
