/*
 * Serval flow migration (RSYN, docs/protocol.md section 10) -- Promela model for SPIN.
 *
 * Two ends A (0) and B (1) of one established flow.  Each holds its own current address, its view of the
 * peer's address, the SAL control counters (snd_nxt, snd_una, rcv_nxt), the migration sub-state (None,
 * RsynSent, RsynReceived, RsynSentReceived) and the retransmitted control packet(s).  The network is a bag
 * (unordered multiset) of at most CAP packets: it reorders freely, may lose LOSS packets, duplicate DUPS
 * packets and inject FORGE copies with a wrong nonce.  A packet reaches whoever holds its destination
 * address at delivery time and is lost when nobody does.  Each end migrates MIGA / MIGB times, at any
 * moment, so both ends may migrate simultaneously, repeatedly, and back to an address used before.
 * An end may release an address it is not moving to (its interface goes down), including its current
 * address while it migrates away from it (break-before-make) -- under assumption E2 below.
 *
 * Two protocols are modelled (see docs/migration-model.md):
 *   -DENGINE   the engine as of commit 0daf590 (src/Serval.Stack/Engine/Engine.Migration.cs and friends):
 *              one control slot whose flags merge, RSYN|ACK answered only while our RSYN is pending, ...
 *   default    the FIXED protocol = engine + fixes FIX_A .. FIX_E (each can be switched off with
 *              -DNO_FIX_A ... -DNO_FIX_E to show that it is needed) = the engine today.
 *   -DROUTER   adds a service router holding B's registration and A's relayed RSYN ("both ends move",
 *              docs/engine.md); with -DBOTH_BREAK both ends may lose their old addresses at once.
 *              -DNO_RELAY: no relay; -DNO_FIX_F: relay in RsynSent only (the engine before fix F).
 *
 * Everything a delivery does is one atomic step (an engine processes a packet to completion).
 * Fields a receiver never reads are not modelled (the verno of an ACK or RSYN|ACK, the ackno of an RSYN).
 * Vernos start at 1 and stay below 8 (MIGA, MIGB <= 6), so serial-number arithmetic is plain arithmetic.
 */

#ifndef MIGA
#define MIGA 2          /* migrations A performs */
#endif
#ifndef MIGB
#define MIGB 2          /* migrations B performs */
#endif
#ifndef CAP
#define CAP 3           /* packets in flight (2..4) */
#endif
#ifndef LOSS
#define LOSS 2          /* packets the network may lose, in total */
#endif
#ifndef DUPS
#define DUPS 1          /* packets the network may duplicate, in total */
#endif
#ifndef FORGE
#define FORGE 1         /* off-path packets with a wrong nonce, in total */
#endif
#ifndef RELEASE
#define RELEASE 1       /* 1: ends may release (lose) addresses; 0: every address stays up */
#endif
#define NADDR 2         /* addresses per end: A has 0,1; B has 2,3 */
#define RADDR 4         /* the service router's address (with -DROUTER) */

/* -DROUTER: a service router holds the registration of B's service (B's address as last registered); A, the
   connecting side, relays every copy of its unanswered RSYN through it (docs/engine.md, "Both ends move").
   -DNO_RELAY: the router and B's registrations stay, but A relays nothing (EngineOptions.RelayRsyn = false).
   -DNO_FIX_F: A relays only while RsynSent, not while RsynSentReceived (the engine before fix F). */
#ifdef ROUTER
#ifdef ENGINE
#error "-DROUTER models the current engine; it cannot be combined with -DENGINE"
#endif
#ifndef NO_RELAY
#define RELAY
#ifndef NO_FIX_F
#define FIX_F           /* the RSYN is relayed while it is unanswered: RsynSent and RsynSentReceived */
#endif
#endif
#endif

#ifndef ENGINE
#ifndef NO_FIX_A
#define FIX_A           /* every RSYN|ACK with the peer's nonce is answered with a pure ACK */
#endif
#ifndef NO_FIX_B
#define FIX_B           /* that pure ACK goes to the RSYN|ACK's source address */
#endif
#ifndef NO_FIX_C
#define FIX_C           /* own RSYN retransmitted until its RSYN|ACK, independently of the RSYN|ACK we owe */
#endif
#ifndef NO_FIX_D
#define FIX_D           /* a duplicate of the last accepted RSYN is answered with RSYN|ACK, not a pure ACK */
#endif
#ifndef NO_FIX_E
#define FIX_E           /* an RSYN|ACK's source does not overwrite the peer's migration address */
#endif
#define CURRENT         /* the engine today: final ACK accepted only from MigrationPeerAddress, a mismatched RSYN|ACK
                           unanswered, and an RSYN from a new source makes a moving end resend its own RSYN at once */
#endif

#define NONE     7
#define MS_NONE  0
#define MS_SENT  1      /* bit 0: our RSYN is outstanding */
#define MS_RECV  2      /* bit 1: we owe the peer an RSYN|ACK / await its final ACK */
#define MS_SR    3
#define F_RSYN   1
#define F_ACK    2
#define F_RSYNACK 3
#define P_REG    0      /* a registration of B's service (to the router; its source is the registered address) */

/* packet = type(2) src(3) dst(3) num(3) bad-nonce(1); 0 = empty slot. num = verno for RSYN, else ackno */
#define PK(ty,sr,ds,nm,b) ((ty)*1024 + (sr)*128 + (ds)*16 + (nm)*2 + (b))
#define PT(pq) ((pq) / 1024)
#define PS(pq) (((pq) / 128) % 8)
#define PD(pq) (((pq) / 16) % 8)
#define PN(pq) (((pq) / 2) % 8)
#define PB(pq) ((pq) % 2)
#define OWNER(ax) ((ax) / NADDR)

/* ---- state of the two ends ---- */
byte addr[2];           /* LocalAddress */
byte peer[2];           /* PeerAddress: our view of the peer */
byte mig[2];            /* MigrationInterface's address (NONE when not moving) */
byte ms[2];             /* Migration sub-state */
byte mpeer[2];          /* MigrationPeerAddress: where the peer's RSYN came from */
byte sndnxt[2];
byte snduna[2];
byte rcvnxt[2];
byte migleft[2];
byte cfl[2];            /* engine's single control slot: flags of the packet in it, 0 = empty (not used with FIX_C) */
#ifdef ROUTER
byte reg;               /* the router: the address B's service is registered at */
#endif

bool held[2 * NADDR + 1];   /* address is up at its owner (held[RADDR]: the router, always up) */
short bag[CAP];         /* the network, sorted descending, zeros last */
byte losses = LOSS;
byte dups = DUPS;
byte forges = FORGE;

/* armed[k]: a retransmission timer is armed and its packet is not in flight (for the fairness premise of the
   liveness property; a function of the rest of the state, so it adds no states).  With FIX_C: k = 2e for
   e's RSYN, 2e+1 for e's RSYN|ACK; else k = e for e's control slot.  With ROUTER, k = 4: B's registration. */
bool armed[5];

hidden byte rc, ot, ty, sr, ds, nm, ax, ji, fl, sa, da, na;   /* scratch, never part of a stored state */
hidden short pq, tq, fq;

#ifdef FIX_C
#define SETTLED_SLOTS 1
#else
#define SETTLED_SLOTS (cfl[0] == 0 && cfl[1] == 0)
#endif
/* both ends agree on each other's current address, no migration pending, nothing left to retransmit */
#define SETTLED (peer[0] == addr[1] && peer[1] == addr[0] && ms[0] == MS_NONE && ms[1] == MS_NONE && SETTLED_SLOTS)
#ifdef ROUTER
#define REG_SETTLED (reg == addr[1])
#else
#define REG_SETTLED 1
#endif
#define QUIESCENT (bag[0] == 0 && migleft[0] == 0 && migleft[1] == 0 && SETTLED && REG_SETTLED)

#define ROOM (bag[CAP-1] == 0)
#if CAP == 2
#define INBAG(q) (bag[0] == (q) || bag[1] == (q))
#elif CAP == 3
#define INBAG(q) (bag[0] == (q) || bag[1] == (q) || bag[2] == (q))
#else
#define INBAG(q) (bag[0] == (q) || bag[1] == (q) || bag[2] == (q) || bag[3] == (q))
#endif

/* the engine's SendOnFlow: RSYN-flagged packets leave from the migration address and, while we owe the
   peer an RSYN|ACK, go to the peer's migration address; everything else goes from addr to peer */
#define SRC_FOR(e, f) ((((f) & F_RSYN) && mig[e] != NONE) -> mig[e] : addr[e])
#define DST_FOR(e, f) ((((f) & F_RSYN) && (ms[e] & MS_RECV) && mpeer[e] != NONE) -> mpeer[e] : peer[e])

/* what a retransmission timer sends */
/* every verno-consuming packet here is an RSYN, so MigrationVerno = snd_nxt - 1, the slot's verno is
   snd_nxt - 1 for an RSYN and snd_nxt for an RSYN|ACK, and the last RSYN accepted had verno rcv_nxt - 1 */
#define MVERNO(e) (sndnxt[e] - 1)
#define SLOT_NUM(e) (cfl[e] == F_RSYN -> MVERNO(e) : rcvnxt[e])
#define CVN(e) (cfl[e] == F_RSYN -> MVERNO(e) : sndnxt[e])
#define SLOT_PKT(e) PK(cfl[e], SRC_FOR(e, cfl[e]), DST_FOR(e, cfl[e]), SLOT_NUM(e), 0)
#define RSYN_PKT(e) PK(F_RSYN, mig[e], DST_FOR(e, F_RSYN), MVERNO(e), 0)
#define RA_PKT(e) PK(F_RSYNACK, SRC_FOR(e, F_RSYN), mpeer[e], rcvnxt[e], 0)

/* the relay (SendOnFlow -> RelayRsyn): only the connecting side A (it knows B's serviceID) sends a copy of its RSYN
   (RSYN without ACK) to the router, from the same (migration) address, with the same verno */
#ifdef RELAY
#ifdef FIX_F
#define RELAYING(e) ((e) == 0 && (ms[e] & MS_SENT))
#else
#define RELAYING(e) ((e) == 0 && ms[e] == MS_SENT)
#endif
#else
#define RELAYING(e) 0
#endif
#define RELAY_PKT(e) PK(F_RSYN, mig[e], RADDR, MVERNO(e), 0)
/* B registers its newest address: the one it moves to, else its current one */
#define NEWEST(e) (mig[e] != NONE -> mig[e] : addr[e])
#define REG_PKT PK(P_REG, NEWEST(1), RADDR, 0, 0)
/* B's registration is retransmitted until the router has it (the acknowledgement is abstracted: the router's
   state is read instead) */
#define REG_ARMED (reg != NEWEST(1) && !INBAG(REG_PKT))
/* A's RSYN timer: the direct copy or (relaying) the relayed copy is not in flight */
#define RSYN_MISSING(e) (!INBAG(RSYN_PKT(e)) || (RELAYING(e) && !INBAG(RELAY_PKT(e))))


inline observe() {
#ifdef FIX_C
    armed[0] = ((ms[0] & MS_SENT) && RSYN_MISSING(0));
    armed[1] = ((ms[0] & MS_RECV) && !INBAG(RA_PKT(0)));
    armed[2] = ((ms[1] & MS_SENT) && RSYN_MISSING(1));
    armed[3] = ((ms[1] & MS_RECV) && !INBAG(RA_PKT(1)));
#ifdef ROUTER
    armed[4] = REG_ARMED
#else
    skip
#endif
#else
    armed[0] = (cfl[0] != 0 && !INBAG(SLOT_PKT(0)));
    armed[1] = (cfl[1] != 0 && !INBAG(SLOT_PKT(1)))
#endif
}

/* ---- the bag ---- */
inline put(q) {
    assert(ROOM);
    ji = CAP - 1;
    bag[ji] = q;
    do
    :: ji > 0 && bag[ji - 1] < bag[ji] -> tq = bag[ji - 1]; bag[ji - 1] = bag[ji]; bag[ji] = tq; ji--
    :: else -> break
    od;
    ji = 0; tq = 0
}

inline remove(k) {
    ji = k;
    do
    :: ji < CAP - 1 -> bag[ji] = bag[ji + 1]; ji++
    :: else -> break
    od;
    bag[CAP - 1] = 0;
    ji = 0
}


/* ---- trace output (only when a trail is replayed with spin -t) ---- */
inline paddr(a) {
    if
    :: a == NONE -> printf("-")
    :: a == RADDR -> printf("router")
    :: a != NONE && a < NADDR -> printf("a%d", a)
    :: a != NONE && a != RADDR && a >= NADDR -> printf("b%d", a - NADDR)
    fi
}

inline ppkt(q) {
    if
    :: PT(q) == P_REG -> printf("REGISTER")
    :: PT(q) == F_RSYN -> printf("RSYN(verno=%d)", PN(q))
    :: PT(q) == F_ACK -> printf("ACK(ackno=%d)", PN(q))
    :: PT(q) == F_RSYNACK -> printf("RSYN|ACK(ackno=%d)", PN(q))
    fi;
    printf(" "); paddr(PS(q)); printf("->"); paddr(PD(q));
    if
    :: PB(q) -> printf(" [wrong nonce]")
    :: else -> skip
    fi
}

inline pend_state(e) {
    printf("  [%c: addr=", 'A' + e); paddr(addr[e]); printf(" peer="); paddr(peer[e]);
    if
    :: ms[e] == MS_NONE -> printf(" None")
    :: ms[e] == MS_SENT -> printf(" RsynSent")
    :: ms[e] == MS_RECV -> printf(" RsynReceived")
    :: else -> printf(" RsynSentReceived")
    fi;
    printf(" mig="); paddr(mig[e]); printf(" mpeer="); paddr(mpeer[e]);
    printf(" snd_nxt=%d rcv_nxt=%d", sndnxt[e], rcvnxt[e]);
#ifndef FIX_C
    if
    :: cfl[e] == 0 -> printf(" slot=empty")
    :: cfl[e] == F_RSYN -> printf(" slot=RSYN")
    :: else -> printf(" slot=RSYN|ACK")
    fi;
#endif
    printf("]\n")
}

/* an engine sends nothing out of an interface that is down */
inline send(f, src, dst, num) {
    if
    :: held[src] -> put(PK(f, src, dst, num, 0)); printf("    sends "); ppkt(PK(f, src, dst, num, 0)); printf("\n")
    :: else -> skip
    fi
}

/* a second packet sent in the same step: it is dropped when the network is full (a queue overflow; every such
   packet is a retransmitted one, whose timer stays armed until a copy is in flight) */
inline send_extra(f, src, dst, num) {
    if
    :: held[src] && ROOM -> put(PK(f, src, dst, num, 0)); printf("    sends "); ppkt(PK(f, src, dst, num, 0)); printf("\n")
    :: held[src] && !ROOM -> printf("    overflow: "); ppkt(PK(f, src, dst, num, 0)); printf(" dropped\n")
    :: else -> skip
    fi
}

inline flow_send(e, f, num) {
    sa = SRC_FOR(e, f);
    da = DST_FOR(e, f);
    send(f, sa, da, num);
    sa = 0; da = 0
}

#ifndef FIX_C
/* QueueControl: a new control packet replaces the unacknowledged one and keeps its flags (all but ACK) */
inline queue_control(e, f) {
    cfl[e] = f | (cfl[e] & F_RSYN)
}
#endif

/* our RSYN (SendOnFlow): the direct copy, then the relayed copy when we relay; in a delivery both are extra */
inline send_rsyn_extra(e) {
    sa = SRC_FOR(e, F_RSYN);
    da = DST_FOR(e, F_RSYN);
    send_extra(F_RSYN, sa, da, MVERNO(e));
    if
    :: RELAYING(e) -> send_extra(F_RSYN, sa, RADDR, MVERNO(e))
    :: else -> skip
    fi;
    sa = 0; da = 0
}

/* ---- the protocol (receiver r, sender os, packet fields t s d n) ---- */

/* the mover answers an RSYN|ACK with a pure ACK */
inline final_ack(e) {
#ifdef FIX_B
    send(F_ACK, addr[e], sr, rcvnxt[e])
#else
    flow_send(e, F_ACK, rcvnxt[e])
#endif
}

/* CompletePeerMigration: the peer's final ACK -- adopt its new address */
inline complete_peer(e) {
    assert(mpeer[e] != NONE && OWNER(mpeer[e]) == 1 - e);
    /* never adopt a stale address: it is the peer's address or target, unless the peer already moved on */
    assert(mpeer[e] == addr[1 - e] || mpeer[e] == mig[1 - e] || sndnxt[1 - e] > rcvnxt[e]);
    peer[e] = mpeer[e];
    mpeer[e] = NONE;                                   /* dead until the next RSYN */
#ifndef FIX_C
    cfl[e] = 0;                                        /* the slot is emptied, whatever it held */
#endif
    if
    :: ms[e] == MS_SR -> ms[e] = MS_SENT
    :: else -> ms[e] = MS_NONE
    fi
}

/* OnControlAck (ackno n) */
inline on_control_ack(e) {
    if
    :: nm < snduna[e] || (nm > sndnxt[e] && !(ms[e] & MS_RECV)) -> skip
    :: else ->
#ifndef FIX_C
        if
        :: cfl[e] != 0 && CVN(e) < nm -> cfl[e] = 0
        :: else -> skip
        fi;
#endif
        if
        :: nm > snduna[e] -> snduna[e] = nm
        :: else -> skip
        fi;
        if
#ifdef CURRENT
        :: (ms[e] & MS_RECV) && ty == F_ACK && sr == mpeer[e] -> complete_peer(e)   /* from MigrationPeerAddress only */
#else
        :: (ms[e] & MS_RECV) && ty == F_ACK -> complete_peer(e)
#endif
        :: else -> skip
        fi
    fi
}

/* OnRsyn */
inline on_rsyn(e) {
    if
    :: ty == F_RSYNACK ->
        if
        :: (ms[e] & MS_SENT) && nm == MVERNO(e) + 1 ->
            /* our RSYN was answered: switch */
            assert(mig[e] != NONE);
            assert(rcvnxt[1 - e] > MVERNO(e));      /* the peer really accepted this RSYN */
            addr[e] = mig[e];
            mig[e] = NONE;
            if
            :: ms[e] == MS_SR ->
                ms[e] = MS_RECV;
#ifndef FIX_E
                mpeer[e] = sr
#else
                skip
#endif
            :: else -> ms[e] = MS_NONE
            fi;
            final_ack(e)
        :: else ->
#if defined(FIX_A) && defined(CURRENT)
            /* the engine answers a repeated RSYN|ACK of our last migration; one for a replaced RSYN goes unanswered */
            if
            :: nm == MVERNO(e) + 1 -> final_ack(e)
            :: else -> skip
            fi
#elif defined(FIX_A)
            final_ack(e)
#else
            skip
#endif
        fi
    :: else ->
        /* the peer moves (an RSYN with a new verno) */
        if
        :: ms[e] == MS_NONE -> ms[e] = MS_RECV
        :: ms[e] == MS_SENT -> ms[e] = MS_SR
        :: else -> skip
        fi;
        rcvnxt[e] = nm + 1;
        mpeer[e] = sr;
#ifdef FIX_C
        flow_send(e, F_RSYNACK, rcvnxt[e]);
#ifdef CURRENT
        /* both move and the peer's RSYN came from elsewhere than where our RSYN goes: resend ours at once, to
           MigrationPeerAddress (= sr), and relay it if we relay */
        if
        :: ms[e] == MS_SR && sr != peer[e] -> send_rsyn_extra(e)
        :: else -> skip
        fi
#else
        skip
#endif
#else
        queue_control(e, F_RSYNACK);
        na = SLOT_NUM(e);
        flow_send(e, cfl[e], na);
        na = 0
#endif
    fi
}

/* OnFlowPacket for a packet with the peer's nonce */
inline receive(e) {
    ot = 1 - e;
    if
    :: ty == F_RSYN -> assert(nm < sndnxt[ot])           /* an RSYN's verno was consumed by its sender */
    :: else -> assert(nm <= sndnxt[e])                  /* nobody acknowledges what we never sent */
    fi;
    if
    :: ty == F_RSYN && nm < rcvnxt[e] ->
        /* old verno */
#ifdef FIX_D
        if
        :: nm == rcvnxt[e] - 1 -> sa = SRC_FOR(e, F_RSYN); send(F_RSYNACK, sa, sr, rcvnxt[e]); sa = 0
        :: else -> flow_send(e, F_ACK, rcvnxt[e])
        fi
#else
        flow_send(e, F_ACK, rcvnxt[e])
#endif
    :: else ->
        if
        :: (ty & F_ACK) -> on_control_ack(e)
        :: else -> skip
        fi;
        if
        :: (ty & F_RSYN) -> on_rsyn(e)
        :: else -> skip
        fi
    fi;
    assert(rcvnxt[e] <= sndnxt[ot] && snduna[e] <= sndnxt[e]);
    ot = 0
}

#ifdef ROUTER
/* the service router: a registration moves B's FORWARD rule to its source address; an RSYN addressed to B's
   service matches no flow of the router and is forwarded like a SYN to the current registration, SOURCE[0] = the
   sender, which B treats as the RSYN's source (rsynFrom): so the forwarded packet is an RSYN from A's address */
inline router_receive(q) {
    if
    :: PT(q) == P_REG -> reg = PS(q); printf("router: B registered at "); paddr(reg); printf("\n")
    :: PT(q) == F_RSYN ->
        fq = PK(F_RSYN, PS(q), reg, PN(q), PB(q));
        put(fq);
        printf("router: forwards "); ppkt(fq); printf("\n");
        fq = 0
    fi
}
#endif

inline deliver(q) {
    ty = PT(q); sr = PS(q); ds = PD(q); nm = PN(q);
    if
#ifdef ROUTER
    :: ds == RADDR -> router_receive(q)
#endif
    :: ds != RADDR && !held[ds] -> printf("NET: "); ppkt(q); printf(" lost: nobody holds the address\n")
    :: ds != RADDR && held[ds] && PB(q) -> printf("%c: ignores ", 'A' + OWNER(ds)); ppkt(q); printf("\n")
    :: ds != RADDR && held[ds] && !PB(q) -> rc = OWNER(ds); printf("%c: receives ", 'A' + rc); ppkt(q); printf("\n"); receive(rc); pend_state(rc)
    fi;
    ty = 0; sr = 0; ds = 0; nm = 0; rc = 0
}

/* StartMigration to the address after the one we are at or moving to */
inline start_migration(e) {
    ax = ((mig[e] != NONE -> mig[e] : addr[e]) ^ 1);   /* NADDR == 2: the other address */
    printf("%c: migrates to ", 'A' + e); paddr(ax); printf("\n");
    held[ax] = 1;                                       /* its interface is up */
    mig[e] = ax;
    migleft[e]--;
    ms[e] = ((ms[e] & MS_RECV) -> MS_SR : MS_SENT);
    sndnxt[e]++;
    pend_state(e);
#ifdef FIX_C
    flow_send(e, F_RSYN, MVERNO(e));
    if
    :: RELAYING(e) -> send_extra(F_RSYN, mig[e], RADDR, MVERNO(e))
    :: else -> skip
    fi;
#else
    queue_control(e, F_RSYN);
    na = SLOT_NUM(e);
    flow_send(e, cfl[e], na);
    na = 0;
#endif
    ax = 0
}

/* E1: an end releases an address it is not moving to; its current one only while moving away from it.
   E2: an end releases nothing while the other end has a migration of its own in progress.  Both ends
   dropping addresses during overlapping migrations is the paper's "rare case" in which neither RSYN can
   arrive (it needs a home agent); it is outside the protocol.  Simultaneous migration itself is modelled:
   both ends may migrate at any time; only the loss of old addresses during the overlap is excluded. */
#ifdef BOTH_BREAK
/* -DBOTH_BREAK drops E2, to show that the paper's "rare case" indeed defeats the protocol */
#define CAN_RELEASE(e, a) (RELEASE && held[a] && (a) != mig[e] && ((a) != addr[e] || mig[e] != NONE))
#else
#define CAN_RELEASE(e, a) (RELEASE && held[a] && (a) != mig[e] && ((a) != addr[e] || mig[e] != NONE) \
    && !(ms[1 - e] & MS_SENT))
#endif

/* One end: its own actions.  (Receiving is done by the network process, atomically.)  The end may stop
   only when everything is over: no packet in flight, all migrations done, both ends settled -- any other
   state in which nothing can move is an invalid end state (a deadlock). */
proctype Node(byte e)
{
    do
    :: d_step {     /* the application or the controller moves the flow */
        migleft[e] > 0 && ROOM ->
        start_migration(e);
        observe()
    }
#ifdef FIX_C
    :: d_step {     /* retransmission timer: our RSYN, until its RSYN|ACK */
        (ms[e] & MS_SENT) && ROOM && RSYN_MISSING(e) ->
        assert(held[mig[e]]);
        printf("%c: retransmits\n", 'A' + e);
        /* a copy identical to one in flight adds nothing: only the missing copies are modelled */
        if
        :: !INBAG(RSYN_PKT(e)) -> flow_send(e, F_RSYN, MVERNO(e))
        :: else -> skip
        fi;
        if
        :: RELAYING(e) && !INBAG(RELAY_PKT(e)) -> send_extra(F_RSYN, mig[e], RADDR, MVERNO(e))
        :: else -> skip
        fi;
        observe()
    }
    :: d_step {     /* retransmission timer: the RSYN|ACK we owe, until the peer's final ACK */
        (ms[e] & MS_RECV) && ROOM && !INBAG(RA_PKT(e)) ->
        assert(held[SRC_FOR(e, F_RSYN)]);
        printf("%c: retransmits\n", 'A' + e);
        flow_send(e, F_RSYNACK, rcvnxt[e]);
        observe()
    }
#else
    :: d_step {     /* retransmission timer: the control slot */
        cfl[e] != 0 && ROOM && !INBAG(SLOT_PKT(e)) ->
        assert(held[SRC_FOR(e, cfl[e])]);
        printf("%c: retransmits\n", 'A' + e);
        na = SLOT_NUM(e);
        flow_send(e, cfl[e], na);
        na = 0;
        observe()
    }
#endif
    :: d_step {     /* an interface goes down */
        CAN_RELEASE(e, e * NADDR) ->
        held[e * NADDR] = 0;
        printf("%c: releases ", 'A' + e); paddr(e * NADDR); printf("\n")
    }
    :: d_step {
        CAN_RELEASE(e, e * NADDR + 1) ->
        held[e * NADDR + 1] = 0;
        printf("%c: releases ", 'A' + e); paddr(e * NADDR + 1); printf("\n")
    }
#ifdef ROUTER
    :: d_step {     /* B (re)registers its newest address with the router, until the router has it */
        e == 1 && REG_ARMED && ROOM ->
        na = NEWEST(1);
        printf("B: registers "); paddr(na); printf("\n");
        put(PK(P_REG, na, RADDR, 0, 0));
        na = 0;
        observe()
    }
#endif
    :: QUIESCENT -> break
    od
}

/* the network: one atomic step per packet -- deliver it (in any order), deliver a copy and keep it,
   lose it, or let an off-path host inject a copy with a wrong nonce.  Equal packets are one choice. */
#define PICK(k) (bag[k] != 0 && (k == 0 || bag[k] != bag[(k) - (k > 0)]))
#define NETSTEP(k) \
    :: d_step { PICK(k) -> pq = bag[k]; remove(k); deliver(pq); pq = 0; observe() } \
    :: d_step { PICK(k) && dups > 0 && ROOM -> dups--; pq = bag[k]; printf("NET: duplicates\n"); deliver(pq); pq = 0; observe() } \
    :: d_step { PICK(k) && losses > 0 -> losses--; printf("NET: loses "); ppkt(bag[k]); printf("\n"); remove(k); observe() } \
    :: d_step { PICK(k) && forges > 0 && ROOM && !PB(bag[k]) && PT(bag[k]) != P_REG -> forges--; pq = bag[k] + 1; put(pq); printf("NET: forged "); ppkt(pq); printf("\n"); pq = 0; observe() }

proctype Net()
{
end_idle:
    do
    NETSTEP(0)
    NETSTEP(1)
#if CAP > 2
    NETSTEP(2)
#endif
#if CAP > 3
    NETSTEP(3)
#endif
    od
}

init {
    d_step {
        addr[0] = 0; peer[0] = NADDR; addr[1] = NADDR; peer[1] = 0;
        held[0] = 1; held[NADDR] = 1; held[RADDR] = 1;
#ifdef ROUTER
        reg = NADDR;
#endif
        mig[0] = NONE; mig[1] = NONE; mpeer[0] = NONE; mpeer[1] = NONE;
        sndnxt[0] = 1; sndnxt[1] = 1; snduna[0] = 1; snduna[1] = 1; rcvnxt[0] = 1; rcvnxt[1] = 1;
        migleft[0] = MIGA; migleft[1] = MIGB;
        observe()
    };
    atomic { run Node(0); run Node(1); run Net() }
}

/* liveness: in every fair run the ends end up, and stay, agreed on each other's current address with no
   migration pending.  Fair = the network is empty infinitely often (every packet in flight is eventually
   delivered or lost: no packet waits forever while others overtake it) and every armed retransmission timer
   eventually fires (infinitely often a pending control packet is in flight or no longer pending).
   Losses are bounded by LOSS, so the loss is fair too. */
#define NETDRAINS (bag[0] == 0)
#ifdef FIX_C
#define NTIMERS 4
#else
#define NTIMERS 2
#endif
/*
 * ltl settle { ([]<> NETDRAINS && []<> !armed[0] && ... && []<> !armed[NTIMERS-1]) -> <>[] SETTLED }
 * written by hand as the never claim of its negation (SPIN's LTL translator takes minutes on this many
 * conjuncts): a generalised Buechi automaton for  []<>NETDRAINS && []<>!armed[k] (all k) && []<>!SETTLED,
 * degeneralised by waiting for each condition in turn; a run that completes the round infinitely often is a
 * fair run that never settles for good.
 */
never settle {
w_net:
    if
    :: NETDRAINS -> goto w_t0
    :: else -> goto w_net
    fi;
w_t0:
    if
    :: !armed[0] -> goto w_t1
    :: else -> goto w_t0
    fi;
w_t1:
    if
    :: !armed[1] -> goto w_t2
    :: else -> goto w_t1
    fi;
w_t2:
#ifdef ROUTER
    if
    :: !armed[4] -> goto w_t2b
    :: else -> goto w_t2
    fi;
w_t2b:
#endif
#if NTIMERS > 2
    if
    :: !armed[2] -> goto w_t3
    :: else -> goto w_t2
    fi;
w_t3:
    if
    :: !armed[3] -> goto w_unsettled
    :: else -> goto w_t3
    fi;
#endif
w_unsettled:
    if
    :: !SETTLED -> goto accept_round
    :: else -> goto w_unsettled
    fi;
accept_round:
    if
    :: true -> goto w_net
    fi
}
