import { describe, expect, it } from 'vitest';
import { pathFor, routeFromPath } from './router';

describe('routes', () => {
  it('maps paths under /ui/ to pages', () => {
    expect(routeFromPath('/ui/')).toBe('devices');
    expect(routeFromPath('/ui')).toBe('devices');
    expect(routeFromPath('/ui/devices')).toBe('devices');
    expect(routeFromPath('/ui/chat')).toBe('chat');
    expect(routeFromPath('/ui/chat/')).toBe('chat');
    expect(routeFromPath('/ui/settings')).toBe('settings');
    expect(routeFromPath('/ui/nope')).toBe('notfound');
    expect(routeFromPath('/')).toBe('notfound');
    expect(routeFromPath('/uix/chat')).toBe('notfound');
    expect(pathFor('chat')).toBe('/ui/chat');
  });
});
