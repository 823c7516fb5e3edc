// The chat page: plain JavaScript in the browser, with the hub's client library (served by the
// demo server from the package's dist/client/) doing the websocket work: reconnecting with backoff,
// holding messages while away, matching replies to requests.
import { createClient } from '/client/index.js'

const $ = (id) => document.getElementById(id)
const query = new URLSearchParams(window.location.search)
/** room name -> { item, log, count, unread, members }: the rooms this page is in, in the order joined; members: id -> name */
const rooms = new Map()
let current
let myName
let client

const statusLabels = {
  connecting: 'connecting…',
  open: 'connected',
  reconnecting: 'reconnecting…',
  closed: 'disconnected'
}

// `?name=alice` (and `&room=a&room=b`) skips the nickname form: handy for links and for the tests.
if (query.has('name')) {
  start(query.get('name'))
} else {
  $('name').value = localStorage.getItem('chat-name') ?? `guest-${Math.random().toString(36).slice(2, 6)}`
  $('name-form').addEventListener('submit', (event) => {
    event.preventDefault()
    localStorage.setItem('chat-name', $('name').value)
    start($('name').value)
  })
}

function start (name) {
  // the server's name for a blank one, so that this page still knows its own lines
  myName = name.trim() || 'anonymous'
  $('name-form').hidden = true
  $('chat').hidden = false
  $('me').textContent = myName
  const wanted = query.getAll('room')
  for (const room of wanted.length > 0 ? wanted : ['lobby']) addRoom(room)
  switchTo(rooms.keys().next().value)

  const url = new URL(`/ws?name=${encodeURIComponent(name)}`, window.location.href)
  url.protocol = url.protocol.replace('http', 'ws')
  // A chat comes back quickly once its server does: the backoff is capped at 5 s, not the client's 30 s default.
  client = createClient(url.href, { reconnect: { initialDelay: 500, maxDelay: 5000 }, bufferSize: 100 })
  client.on('status', showStatus)
  showStatus(client.status)
  client.on('said', ({ room, from, text, at }) => addMessage(room, from, text, at))
  client.on('member', ({ room, name, change }) => addNotice(room, `${name} ${change} the room`))
  client.on('online', ({ room, count }) => setCount(room, count))
  // The hub's presence events: the list comes whole with the join's reply, these keep it live
  client.on('$join', ({ room, id, params }) => setMember(room, id, params.name))
  client.on('$leave', ({ room, id }) => setMember(room, id, undefined))
  // an error frame for a message sent without waiting for a reply (a `say` the schema refuses)
  client.on('error', (error) => {
    if (current !== undefined) addNotice(current, `not sent: ${error.message}`)
  })

  $('say-form').addEventListener('submit', (event) => {
    event.preventDefault()
    if (current === undefined || $('text').value.trim() === '') return
    // after a final close the client takes nothing more (it throws): the room says why already
    if (client.status === 'closed') return
    // while the connection is away this waits in the client, and goes out when it is back
    client.send('say', { room: current, text: $('text').value })
    $('text').value = ''
  })
  $('join-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const room = $('join-room').value.trim()
    if (client.status === 'closed') return
    $('join-room').value = ''
    addRoom(room)
    switchTo(room)
    join(room)
  })
  $('text').focus()
}

/** Asks the server to put this page in a room; the reply carries the room's online count. */
async function join (room) {
  $('join-error').textContent = ''
  try {
    const reply = await client.request('join', { room }, { timeout: 5000 })
    setCount(reply.room, reply.online)
    const entry = rooms.get(reply.room)
    if (entry !== undefined) {
      entry.members = new Map(reply.members.map(({ id, name }) => [id, name]))
      // the server may list this page a moment later than it answers: it is in the room already
      entry.members.set(reply.you, myName)
      showMembers()
    }
  } catch (error) {
    // an error frame ({ code, message }, e.g. a name the schema refuses) or a timeout
    $('join-error').textContent = `could not join ${room}: ${error.message}`
    if (error.code === 'invalid_data') removeRoom(room)
  }
}

function showStatus (status) {
  $('status').dataset.status = status
  $('status').textContent = statusLabels[status] ?? status
  // A new socket is a new client on the server, in no room: join them all again. The first
  // connection joins them here too.
  if (status === 'open') for (const room of rooms.keys()) join(room)
  if (current === undefined) return
  if (status === 'reconnecting') addNotice(current, 'connection lost, reconnecting…')
  // only after a close that says not to come back (1008, 4000-4099) or maxRetries
  if (status === 'closed') addNotice(current, 'disconnected: reload the page to come back')
}

function addRoom (room) {
  if (rooms.has(room)) return
  const item = $('room-item').content.firstElementChild.cloneNode(true)
  item.dataset.room = room
  item.querySelector('.room').textContent = room
  item.querySelector('.room').addEventListener('click', () => switchTo(room))
  item.querySelector('.leave').addEventListener('click', () => {
    if (client.status !== 'closed') client.send('leave', { room })
    removeRoom(room)
  })
  $('rooms').append(item)
  const log = document.createElement('ol')
  log.className = 'log'
  log.dataset.room = room
  log.hidden = true
  $('logs').append(log)
  rooms.set(room, { item, log, count: item.querySelector('.count'), unread: item.querySelector('.unread'), members: new Map() })
}

function removeRoom (room) {
  const entry = rooms.get(room)
  if (entry === undefined) return
  entry.item.remove()
  entry.log.remove()
  rooms.delete(room)
  if (current === room) switchTo(rooms.keys().next().value)
}

function switchTo (room) {
  current = room
  for (const [name, entry] of rooms) {
    entry.item.classList.toggle('current', name === room)
    entry.log.hidden = name !== room
  }
  showMembers()
  $('no-room').hidden = room !== undefined
  $('text').disabled = $('send').disabled = room === undefined
  $('room-name').textContent = room === undefined ? 'no room' : `#${room}`
  if (room === undefined) {
    $('online').textContent = ''
    return
  }
  const entry = rooms.get(room)
  entry.unread.textContent = ''
  $('online').textContent = entry.count.textContent === '' ? '' : `${entry.count.textContent} online`
  $('logs').scrollTop = $('logs').scrollHeight
}

/** A member entered a room (a name) or left it (undefined). */
function setMember (room, id, name) {
  const entry = rooms.get(room)
  if (entry === undefined) return
  if (name === undefined) entry.members.delete(id)
  else entry.members.set(id, String(name))
  if (room === current) showMembers()
}

/** The current room's members, by name. */
function showMembers () {
  const names = current === undefined ? [] : [...rooms.get(current).members.values()].sort()
  $('members').replaceChildren(...names.map((name) => {
    const item = document.createElement('li')
    item.textContent = name
    return item
  }))
}

function setCount (room, count) {
  const entry = rooms.get(room)
  if (entry === undefined) return
  entry.count.textContent = String(count)
  if (room === current) $('online').textContent = `${count} online`
}

/** Appends a line to a room's log; a room not on screen counts it as unread. */
function append (room, line) {
  const entry = rooms.get(room)
  if (entry === undefined) return
  entry.log.append(line)
  if (room === current) $('logs').scrollTop = $('logs').scrollHeight
  else entry.unread.textContent = String(Number(entry.unread.textContent) + 1)
}

function addMessage (room, from, text, at) {
  const line = document.createElement('li')
  line.className = from === myName ? 'said mine' : 'said'
  const who = document.createElement('span')
  who.className = 'from'
  who.textContent = from
  // a colour per name, so that a conversation is easy to follow
  let hash = 0
  for (const char of from) hash = (hash * 31 + char.codePointAt(0)) % 360
  who.style.color = `hsl(${hash} 60% 38%)`
  const words = document.createElement('span')
  words.className = 'text'
  words.textContent = text
  const time = document.createElement('time')
  time.textContent = new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  line.append(who, words, time)
  append(room, line)
}

function addNotice (room, text) {
  const line = document.createElement('li')
  line.className = 'system'
  line.textContent = text
  append(room, line)
}
