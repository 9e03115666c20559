/** The v1 wire shapes (docs: /work V1 API): snake_case as the server sends them. */
export interface Participant {
  participant_id: string;
  participant_index: number;
  total_time_ms: number;
  time_used_ms: number;
  time_remaining_ms: number;
  cycle_count: number;
  is_active: boolean;
  has_expired: boolean;
  group_id?: string;
}

export type SyncMode = 'per_participant' | 'per_cycle' | 'per_group' | 'global' | 'count_up';
export type Status = 'pending' | 'running' | 'paused' | 'expired' | 'completed' | 'cancelled';

export interface SessionState {
  session_id: string;
  sync_mode: SyncMode;
  status: Status;
  version: number;
  /** Which life of this id (each create stamps a higher one); order states by (life, version). */
  life?: number;
  participants: Participant[];
  active_participant_id: string | null;
  total_time_ms: number;
  time_per_cycle_ms: number | null;
  cycle_started_at: string | null;
  session_started_at: string | null;
  session_completed_at: string | null;
  created_at: string;
  updated_at: string;
  server_time_ms?: number;
  increment_ms?: number;
  max_time_ms?: number;
  [extra: string]: unknown;
}

/** createSession's argument; ids and indexes are filled in when left out. */
export interface SessionConfig {
  session_id?: string;
  sync_mode: SyncMode;
  participants: Array<Partial<Pick<Participant, 'participant_id' | 'participant_index' | 'group_id'>> & { total_time_ms: number }>;
  time_per_cycle_ms?: number;
  increment_ms?: number;
  max_time_ms?: number;
  auto_advance?: boolean;
  warnings_ms?: number[];
  metadata?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface SwitchOptions {
  nextParticipantId?: string;
  currentParticipantId?: string;
  expectedVersion?: number;
}

/** The relay's messages (server -> client). */
export interface ServerMessage {
  type: string;
  sessionId?: string;
  timestamp?: number;
  version?: number;
  state?: SessionState;
  code?: string;
  message?: string;
  participant_id?: string | null;
  remaining_ms?: number;
  [extra: string]: unknown;
}
