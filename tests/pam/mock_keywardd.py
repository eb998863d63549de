'''keywardd mock template for python-dbusmock: org.keyward.Keyward1 on the system bus.

Implements Check, Authenticate, Cancel, BindSession, UnbindSession of docs/dbus-api.md with
answers scripted per test through methods on org.freedesktop.DBus.Mock:

  SetCheck(user, require, uv, up, timeout_ms, rule, message, n_credentials)
  SetCheckMode(mode)              'reply' (default), 'hang' (Check never answers),
                                  'error' (Check answers org.keyward.Keyward1.Error.Failed)
                                  or 'full-N' (the next N Checks answer LimitsExceeded, as
                                  dbus-daemon does when the daemon's queue is full)
  SetAuth(user, mode, granted, reason, message, token, pin)
      mode 'reply': answer (granted, reason, message, token) at once
      mode 'pin':   granted with token when the PIN read from the fd equals `pin`,
                    (false, 'pin-required', ...) when the fd was empty,
                    else (false, 'wrong-pin', message)
      mode 'slow':  answer like 'reply', one second later (a touch being awaited)
      mode 'hang':  never answer
      mode 'release': give up the bus name, never answer (the name owner changes)
      mode 'exit':  the mock process exits without answering
  SetBind(mode, binding_id)       mode 'ok' or 'fail'
  GetPins() -> aay                the bytes read from every Authenticate pin_fd, in order
  GetCalls2() -> a(sas)           every manager call: (method, arguments as strings)

Users without SetCheck are not covered (require 'none').
'''

import os

import dbus
import dbus.service

from dbusmock import MOCK_IFACE
from gi.repository import GLib

BUS_NAME = 'org.keyward.Keyward1'
MAIN_OBJ = '/org/keyward/Keyward1'
MAIN_IFACE = 'org.keyward.Keyward1.Manager'
SYSTEM_BUS = True

ERR_FAILED = 'org.keyward.Keyward1.Error.Failed'
PIN_MAX = 255


def _record(self, name, args):
    self.kw_calls.append((name, [str(a) for a in args]))
    self.log(name + ' ' + ' '.join(repr(str(a)) for a in args))


def _read_pin(pin_fd):
    fd = pin_fd.take()
    data = b''
    try:
        while len(data) <= PIN_MAX:
            chunk = os.read(fd, PIN_MAX + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data


def _check(self, user, service, tty, rhost, reply_cb=None, error_cb=None):
    _record(self, 'Check', [user, service, tty, rhost])
    if self.kw_check_mode == 'hang':
        self.kw_pending.append((reply_cb, error_cb))
        return
    if self.kw_check_mode == 'error':
        error_cb(dbus.exceptions.DBusException('the mock refuses Check', name=ERR_FAILED))
        return
    if self.kw_check_mode.startswith('full-'):
        left = int(self.kw_check_mode[5:])
        self.kw_check_mode = f'full-{left - 1}' if left > 1 else 'reply'
        error_cb(dbus.exceptions.DBusException(
            'Rejected: destination has a full message queue',
            name='org.freedesktop.DBus.Error.LimitsExceeded'))
        return
    c = self.kw_check.get(str(user))
    if c is None:
        c = ('none', 'discouraged', False, dbus.UInt32(0), 'default', '', dbus.UInt32(0))
    # the id of the login's decision, which Authenticate gets back ("decision" option)
    reply_cb(*c, 'dec-%s' % user)


def _authenticate(self, user, service, tty, rhost, pin_fd, options, reply_cb=None,
                  error_cb=None, sender=None):
    pin = _read_pin(pin_fd)
    self.kw_pins.append(dbus.ByteArray(pin))
    uid = self.connection.get_unix_user(sender)
    _record(self, 'Authenticate', [user, service, tty, rhost, '<fd>', dict(options),
                                   'uid=%d' % uid])
    a = self.kw_auth.get(str(user))
    if a is None:
        reply_cb(False, 'not-enrolled', 'No security key is enrolled for %s.' % user, '', '', '')
        return
    mode = a['mode']
    if mode == 'hang':
        self.kw_pending.append((reply_cb, error_cb))
    elif mode == 'release':
        self.kw_pending.append((reply_cb, error_cb))
        self.connection.release_name(BUS_NAME)
    elif mode == 'exit':
        os._exit(0)
    elif mode == 'slow':
        def later():
            reply_cb(a['granted'], a['reason'], a['message'], a['token'] if a['granted'] else '',
                     'key-1' if a['granted'] else '', '/sys/devices/virtual/hidraw0')
            return False
        GLib.timeout_add(1000, later)
    elif mode == 'pin':
        if not pin:
            reply_cb(False, 'pin-required',
                     "The policy requires your security key's PIN; none was given.", '', '', '')
        elif pin == a['pin'].encode('utf-8'):
            reply_cb(True, 'ok', '', a['token'], 'key-1', '/sys/devices/virtual/hidraw0')
        else:
            reply_cb(False, 'wrong-pin', a['message'], '', '', '')
    else:
        reply_cb(a['granted'], a['reason'], a['message'], a['token'] if a['granted'] else '',
                 'key-1' if a['granted'] else '', '/sys/devices/virtual/hidraw0')


def _cancel(self):
    _record(self, 'Cancel', [])


def _bind_session(self, token, session_id, pid, service, tty, user):
    _record(self, 'BindSession', [token, session_id, pid, service, tty, user])
    if self.kw_bind[0] != 'ok':
        raise dbus.exceptions.DBusException('binding refused by the mock', name=ERR_FAILED)
    return self.kw_bind[1]


def _unbind_session(self, binding_id):
    _record(self, 'UnbindSession', [binding_id])
    if self.kw_bind[0] != 'ok':
        raise dbus.exceptions.DBusException('unbinding refused by the mock', name=ERR_FAILED)


# name: (function, in, out, asynchronous). Exported in load() rather than decorated here:
# dbusmock wraps module-level methods in loggedmethod, which re-marshals arguments and
# does not suit a file descriptor; _record() keeps our own call log.
_MANAGER_METHODS = {
    'Check': (_check, 'ssss', 'ssbussus', True),
    'Authenticate': (_authenticate, 'ssssha{sv}', 'bsssss', True),
    'Cancel': (_cancel, '', '', False),
    'BindSession': (_bind_session, 'ssusss', 's', False),
    'UnbindSession': (_unbind_session, 's', '', False),
}


def load(mock, parameters):
    mock.kw_check = {}
    mock.kw_check_mode = 'reply'
    mock.kw_auth = {}
    mock.kw_bind = ('ok', 'binding-1')
    mock.kw_pins = []
    mock.kw_calls = []
    mock.kw_pending = []
    for name, (impl, in_sig, out_sig, asynchronous) in _MANAGER_METHODS.items():
        impl.__name__ = name
        fn = dbus.service.method(MAIN_IFACE, in_signature=in_sig, out_signature=out_sig,
                                 async_callbacks=('reply_cb', 'error_cb') if asynchronous
                                 else None,
                                 sender_keyword='sender' if name == 'Authenticate'
                                 else None)(impl)
        setattr(mock.__class__, name, fn)
        mock.methods.setdefault(MAIN_IFACE, {})[name] = (in_sig, out_sig, '', fn)


@dbus.service.method(MOCK_IFACE, in_signature='sssbussu', out_signature='')
def SetCheck(self, user, require, uv, up, timeout_ms, rule, message, n_credentials):
    '''Script the Check answer for USER.'''
    self.kw_check[str(user)] = (require, uv, bool(up), dbus.UInt32(timeout_ms), rule, message,
                                dbus.UInt32(n_credentials))


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def SetCheckMode(self, mode):
    ''''reply', 'hang', 'error' or 'full-N'.'''
    self.kw_check_mode = str(mode)


@dbus.service.method(MOCK_IFACE, in_signature='ssbssss', out_signature='')
def SetAuth(self, user, mode, granted, reason, message, token, pin):
    '''Script the Authenticate answer for USER.'''
    self.kw_auth[str(user)] = {'mode': str(mode), 'granted': bool(granted), 'reason': reason,
                               'message': message, 'token': token, 'pin': str(pin)}


@dbus.service.method(MOCK_IFACE, in_signature='ss', out_signature='')
def SetBind(self, mode, binding_id):
    '''Script BindSession/UnbindSession: mode 'ok' or 'fail'.'''
    self.kw_bind = (str(mode), str(binding_id))


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='aay')
def GetPins(self):
    '''The bytes read from each Authenticate pin_fd.'''
    return dbus.Array(self.kw_pins, signature='ay')


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='a(sas)')
def GetCalls2(self):
    '''Every manager call with its arguments as strings.'''
    return dbus.Array([(n, dbus.Array(a, signature='s')) for n, a in self.kw_calls],
                      signature='(sas)')
