/** Text made safe to place in HTML, in element content and in quoted attributes alike (prompts are user input). Pure. */
export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
